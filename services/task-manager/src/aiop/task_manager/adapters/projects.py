"""Projects and tasks in PostgreSQL, on the caller's connection."""

import json
from typing import Any

import msgspec

from aiop.contracts.projects import NewProject, ProjectView, TaskSpec, TaskView
from aiop.contracts.workflow import WorkflowSpec
from aiop.task_manager.adapters import Conn

_spec = msgspec.json.Decoder(WorkflowSpec)
_PROJECT = (
    "select p.*, (select count(*) from tasks t where t.project = p.name) as tasks from projects p"
)


async def create_project(conn: Conn, new: NewProject) -> tuple[ProjectView | None, bool]:
    """The project and whether it is new; (None, False) when another principal made one
    by that name (the name is taken)."""
    row = await conn.fetchrow(
        "insert into projects (name, description, created_by) values ($1, $2, $3)"
        " on conflict (name) do nothing returning name",
        new.name, new.description, new.created_by,
    )  # fmt: skip
    project = await get_project(conn, new.name)
    assert project is not None
    if row is None and project.created_by != new.created_by:
        return None, False
    return project, row is not None


async def get_project(conn: Conn, name: str) -> ProjectView | None:
    row = await conn.fetchrow(f"{_PROJECT} where p.name = $1", name)
    return _project(row) if row else None


async def projects(conn: Conn, visible: list[str], archived: bool) -> list[ProjectView]:
    rows = await conn.fetch(
        f"{_PROJECT} where p.name = any($1::text[]) and ($2 or p.archived_at is null)"
        " order by p.name",
        visible, archived,
    )  # fmt: skip
    return [_project(r) for r in rows]


async def archive_project(conn: Conn, name: str) -> ProjectView | None:
    await conn.execute(
        "update projects set archived_at = coalesce(archived_at, now()) where name = $1", name
    )
    return await get_project(conn, name)


async def save_task(conn: Conn, project: str, name: str, task: TaskSpec) -> tuple[TaskView, bool]:
    row = await conn.fetchrow(
        "insert into tasks (project, name, description, template, parameters, spec)"
        " values ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
        " on conflict (project, name) do update set description = excluded.description,"
        "  template = excluded.template, parameters = excluded.parameters,"
        "  spec = excluded.spec, updated_at = now()"
        " returning *, (xmax = 0) as created",
        project, name, task.description, task.template, json.dumps(task.parameters),
        msgspec.json.encode(task.workflow).decode() if task.workflow else None,
    )  # fmt: skip
    assert row is not None
    return _task(row), bool(row["created"])


async def get_task(conn: Conn, project: str, name: str) -> TaskView | None:
    row = await conn.fetchrow("select * from tasks where project = $1 and name = $2", project, name)
    return _task(row) if row else None


async def tasks(conn: Conn, project: str) -> list[TaskView]:
    rows = await conn.fetch("select * from tasks where project = $1 order by name", project)
    return [_task(r) for r in rows]


async def delete_task(conn: Conn, project: str, name: str) -> TaskView | None:
    row = await conn.fetchrow(
        "delete from tasks where project = $1 and name = $2 returning *", project, name
    )
    return _task(row) if row else None


def _project(r: Any) -> ProjectView:
    return ProjectView(
        name=r["name"], description=r["description"], created_at=r["created_at"],
        created_by=r["created_by"], archived_at=r["archived_at"], tasks=r["tasks"],
    )  # fmt: skip


def _task(r: Any) -> TaskView:
    return TaskView(
        project=r["project"], name=r["name"], description=r["description"],
        template=r["template"], parameters=json.loads(r["parameters"]),
        workflow=_spec.decode(r["spec"]) if r["spec"] else None,
        created_at=r["created_at"], updated_at=r["updated_at"],
    )  # fmt: skip
