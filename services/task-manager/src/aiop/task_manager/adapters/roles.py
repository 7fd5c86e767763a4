"""The role task-manager connects as: its own tables' rows, nothing more.

The superuser only migrates. This role may read and write the rows of task-manager's
tables and read which migrations ran; it cannot create, alter or drop anything, nor read
another database or PostgreSQL's own catalogues of roles and passwords.
"""

import re

from aiop.task_manager.adapters import Conn

ROLE = "aiop_task_manager"
# Every table of the schema is one of task-manager's but the migrations' own record.
_TABLES = (
    "select quote_ident(tablename) from pg_tables"
    " where schemaname = 'public' and tablename <> 'schema_migrations' order by tablename"
)
_SAFE = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")  # a password goes into DDL as a literal


async def grant_service_role(conn: Conn, password: str) -> None:
    """Create or update the role with ``password`` and its rights; run as the superuser,
    after the migrations."""
    if not _SAFE.match(password):
        raise ValueError("the role's password must be 16-128 letters, digits, '-' or '_'")
    database = await conn.fetchval("select current_database()")
    async with conn.transaction():
        if not await conn.fetchval("select 1 from pg_roles where rolname = $1", ROLE):
            await conn.execute(f"create role {ROLE} login")
        await conn.execute(f"alter role {ROLE} login password '{password}'")
        await conn.execute(f'grant connect on database "{database}" to {ROLE}')
        await conn.execute(f"grant usage on schema public to {ROLE}")
        tables = ", ".join([r[0] for r in await conn.fetch(_TABLES)])
        await conn.execute(f"grant select, insert, update, delete on {tables} to {ROLE}")
        await conn.execute(f"grant usage on all sequences in schema public to {ROLE}")
        await conn.execute(f"grant select on schema_migrations to {ROLE}")
