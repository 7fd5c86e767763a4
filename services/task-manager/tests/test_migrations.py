"""Migrations apply once, in order, and `python -m aiop.task_manager migrate` runs them."""

import subprocess
import sys

import asyncpg
import pytest

from aiop.task_manager.adapters.migrations import available, migrate

pytestmark = pytest.mark.integration


async def test_migrations_apply_once(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn) == [v for v, _, _ in available()]
        assert await migrate(conn) == []
        tables = {
            r["tablename"]
            for r in await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        }
        assert {"workflows", "steps", "inbox", "outbox", "schema_migrations"} <= tables
    finally:
        await conn.close()


def test_migrate_command(pg_url: str) -> None:
    env = {"AIOP_DATABASE_URL": pg_url, "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "aiop.task_manager", "migrate"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    versions = [v for v, _, _ in available()]
    assert versions[:4] == [1, 2, 3, 4]
    assert f"applied migrations {versions}" in done.stdout
