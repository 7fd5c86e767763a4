"""Versioned SQL migrations (``migrations/NNNN_name.sql``), applied once each, in order."""

import logging
from importlib import resources

from aiop.task_manager.adapters import Conn

log = logging.getLogger("aiop.task_manager.migrations")

# Serialises migrators: several task-manager instances may start at once.
LOCK_KEY = 0x7A5C_4D61_6E61_6700  # fixed, and used for nothing else

CREATE_TRACKING = """
create table if not exists schema_migrations (
    version    integer primary key,
    name       text not null,
    applied_at timestamptz not null default now()
)
"""


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in the package, in order."""
    found = []
    for entry in resources.files("aiop.task_manager").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text()))
    return sorted(found)


async def migrate(conn: Conn) -> list[int]:
    """Apply what is missing, in one transaction under an advisory lock; the versions applied."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(CREATE_TRACKING)
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for version, name, sql in available():
            if version in done:
                continue
            log.info("applying migration %04d %s", version, name)
            await conn.execute(sql)
            await conn.execute(
                "insert into schema_migrations (version, name) values ($1, $2)", version, name
            )
            applied_now.append(version)
    return applied_now
