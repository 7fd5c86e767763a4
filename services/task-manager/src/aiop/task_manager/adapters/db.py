"""The asyncpg pool. A connection lost to a PostgreSQL restart is replaced on its next
acquire; the call that hit it raises, and its message is NAKed and redelivered."""

import asyncio
import logging

import asyncpg

from aiop.task_manager.adapters.migrations import migrate

log = logging.getLogger("aiop.task_manager.db")


async def open_pool(dsn: str, *, wait: float = 60.0, size: int = 10) -> asyncpg.Pool:
    """A pool on a migrated database, waiting up to ``wait`` seconds for PostgreSQL.

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
                await migrate(conn)
            return pool
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("PostgreSQL not reachable yet, retrying in %.1fs: %r", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
