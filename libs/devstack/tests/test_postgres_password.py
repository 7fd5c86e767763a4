"""The embedded PostgreSQL demands a password, and a cluster made trusting every local
connection (by an earlier version) stops trusting at its next start."""

from pathlib import Path

import asyncpg
import pytest

from aiop.devstack import PostgresServer
from aiop.devstack.postgres import HBA, PASSWORD_FILE

pytestmark = pytest.mark.integration

TRUSTING = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


async def can_connect(server: PostgresServer, password: str | None) -> bool:
    auth = f"postgres:{password}" if password else "postgres"
    try:
        conn = await asyncpg.connect(f"postgresql://{auth}@127.0.0.1:{server.port}/aiop")
    except asyncpg.exceptions.InvalidPasswordError:
        return False
    await conn.close()
    return True


async def test_a_trusting_cluster_gets_a_password_at_its_next_start(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg").start()
    server.stop()
    # As an earlier version left it: every local connection trusted, no password kept.
    (server.pgdata / "pg_hba.conf").write_text(TRUSTING)
    (server.data_dir / PASSWORD_FILE).unlink()
    server.start()
    try:
        assert (server.pgdata / "pg_hba.conf").read_text() == HBA
        password = server.password
        assert (server.data_dir / PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
        assert await can_connect(server, password)
        assert not await can_connect(server, None)
        assert not await can_connect(server, "wrong")
    finally:
        server.stop()
