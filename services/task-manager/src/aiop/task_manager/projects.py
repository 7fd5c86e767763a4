"""Answers about projects and tasks, for the gateway's /v1/projects routes."""

from collections.abc import Callable

import asyncpg

from aiop.contracts.projects import (
    NewProject,
    ProjectList,
    ProjectRef,
    ProjectSaved,
    ProjectsQuery,
    ProjectView,
    SaveTask,
    TaskList,
    TaskRef,
    TaskSaved,
    TaskView,
)
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.adapters import projects as store


class ProjectAnswers:
    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool  # opened at start, after this is built

    async def create(self, new: NewProject) -> ProjectSaved:
        async with self._pool().acquire() as conn:
            project, created = await store.create_project(conn, new)
        if project is None:
            raise QueryFailed(409, f"project {new.name} exists already")
        return ProjectSaved(project=project, created=created)

    async def list(self, q: ProjectsQuery) -> ProjectList:
        async with self._pool().acquire() as conn:
            return ProjectList(projects=await store.projects(conn, q.visible, q.archived))

    async def get(self, ref: ProjectRef) -> ProjectView:
        async with self._pool().acquire() as conn:
            return _found(await store.get_project(conn, ref.name), ref.name)

    async def archive(self, ref: ProjectRef) -> ProjectView:
        async with self._pool().acquire() as conn:
            return _found(await store.archive_project(conn, ref.name), ref.name)

    async def save_task(self, ask: SaveTask) -> TaskSaved:
        async with self._pool().acquire() as conn, conn.transaction():
            project = _found(await store.get_project(conn, ask.project), ask.project)
            if project.archived_at is not None:
                raise QueryFailed(409, f"project {ask.project} is archived")
            task, created = await store.save_task(conn, ask.project, ask.name, ask.task)
        return TaskSaved(task=task, created=created)

    async def get_task(self, ref: TaskRef) -> TaskView:
        async with self._pool().acquire() as conn:
            task = await store.get_task(conn, ref.project, ref.name)
        if task is None:
            raise QueryFailed(404, f"no task {ref.name} in project {ref.project}")
        return task

    async def list_tasks(self, ref: ProjectRef) -> TaskList:
        async with self._pool().acquire() as conn:
            _found(await store.get_project(conn, ref.name), ref.name)
            return TaskList(tasks=await store.tasks(conn, ref.name))

    async def delete_task(self, ref: TaskRef) -> TaskView:
        async with self._pool().acquire() as conn:
            task = await store.delete_task(conn, ref.project, ref.name)
        if task is None:
            raise QueryFailed(404, f"no task {ref.name} in project {ref.project}")
        return task


def _found(project: ProjectView | None, name: str) -> ProjectView:
    if project is None:
        raise QueryFailed(404, f"no project {name}")
    return project
