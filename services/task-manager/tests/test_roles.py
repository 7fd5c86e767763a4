"""task-manager's own database role, against a real PostgreSQL: its tables' rows, and
nothing more; and the embedded server itself takes no connection without its password."""

import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from aiop.task_manager.adapters.db import NotMigrated, open_pool
from aiop.task_manager.adapters.migrations import migrate
from aiop.task_manager.adapters.roles import ROLE, grant_service_role

pytestmark = pytest.mark.integration


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


async def test_the_service_role_uses_rows_and_changes_nothing_else(pg_url: str) -> None:
    password = secrets.token_urlsafe(24)
    owner = await asyncpg.connect(pg_url)
    try:
        await migrate(owner)
        await grant_service_role(owner, password)
    finally:
        await owner.close()
    pool = await open_pool(as_role(pg_url, ROLE, password), size=1, migrating=False)
    try:
        async with pool.acquire() as conn:
            await conn.execute("insert into inbox (consumer, event_id) values ('c', 'e1')")
            assert await conn.fetchval("select count(*) from inbox") == 1
            for forbidden in (
                "create table stolen (x int)",
                "drop table workflows",
                "alter table outbox add column x int",
                "select rolpassword from pg_authid",
                f"alter role {ROLE} superuser",
                "delete from schema_migrations",
            ):
                with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                    await conn.execute(forbidden)
    finally:
        await pool.close()


async def test_without_migrations_a_service_that_may_not_migrate_says_so(pg_url: str) -> None:
    with pytest.raises(NotMigrated, match="task_manager migrate"):
        await open_pool(pg_url, size=1, migrating=False, wait=1)


async def test_the_embedded_server_wants_a_password(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    for netloc in (
        f"postgres@{parts.hostname}:{parts.port}",
        f"postgres:wrong@{parts.hostname}:{parts.port}",
    ):
        with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
            await asyncpg.connect(urlunsplit(parts._replace(netloc=netloc)))
