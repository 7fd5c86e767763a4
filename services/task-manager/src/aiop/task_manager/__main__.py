"""``python -m aiop.task_manager`` runs the service; ``... migrate`` only migrates."""

import asyncio
import sys

import asyncpg

from aiop.task_manager.adapters.migrations import migrate
from aiop.task_manager.main import TaskManagerSettings, run


async def migrate_only(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        print(f"task-manager: applied migrations {applied or 'none (up to date)'}")
    finally:
        await conn.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        asyncio.run(migrate_only(TaskManagerSettings().database_url))  # type: ignore[call-arg]
    else:
        run()
