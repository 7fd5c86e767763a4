"""``python -m aiop.task_manager`` runs the service; ``... migrate`` only migrates, as
the superuser, and with ``AIOP_DATABASE_ROLE_PASSWORD`` set also sets up the role the
service connects as (``adapters/roles.py``)."""

import asyncio
import os
import sys

import asyncpg

from aiop.task_manager.adapters.migrations import migrate
from aiop.task_manager.adapters.roles import ROLE, grant_service_role
from aiop.task_manager.main import TaskManagerSettings, run


async def migrate_only(dsn: str, role_password: str | None) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        print(f"task-manager: applied migrations {applied or 'none (up to date)'}")
        if role_password:
            await grant_service_role(conn, role_password)
            print(f"task-manager: role {ROLE} may use the tables")
    finally:
        await conn.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        dsn = TaskManagerSettings().database_url  # type: ignore[call-arg]
        asyncio.run(migrate_only(dsn, os.environ.get("AIOP_DATABASE_ROLE_PASSWORD")))
    else:
        run()
