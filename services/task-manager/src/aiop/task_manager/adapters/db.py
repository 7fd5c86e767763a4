"""The asyncpg pool. A connection lost to a PostgreSQL restart is replaced on its next
acquire; the call that hit it raises, and its message is NAKed and redelivered."""

import asyncio
import logging

import asyncpg

from aiop.task_manager.adapters import Conn
from aiop.task_manager.adapters.migrations import available, migrate

log = logging.getLogger("aiop.task_manager.db")


class NotMigrated(RuntimeError):
    """The database lacks migrations, and this service may not apply them."""


async def open_pool(
    dsn: str, *, wait: float = 60.0, size: int = 10, migrating: bool = True
) -> asyncpg.Pool:
    """A pool on a migrated database, waiting up to ``wait`` seconds for PostgreSQL;
    ``migrating`` applies what is missing, else finding anything missing is an error.

    All ``size`` connections open at start: memory stays flat under load instead of
    growing with the pool (and a connection problem shows at start, not at the first
    burst)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.1
    while True:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
            async with pool.acquire() as conn:
                await (migrate(conn) if migrating else _check_migrated(conn))
            return pool
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("PostgreSQL not reachable yet, retrying in %.1fs: %r", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _check_migrated(conn: Conn) -> None:
    try:
        rows = await conn.fetch("select version from schema_migrations")
    except asyncpg.exceptions.UndefinedTableError:
        rows = []  # never migrated at all
    done = {r["version"] for r in rows}
    missing = [version for version, _, _ in available() if version not in done]
    if missing:
        raise NotMigrated(
            f"migrations {missing} are not applied: run `python -m aiop.task_manager migrate`"
            " as the database's owner"
        )
