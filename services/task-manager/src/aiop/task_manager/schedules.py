"""The schedule endpoints the gateway asks: create, list, show, delete, pause, resume.

A schedule is checked when it is created: its cron expression and timezone, that it
names one target, and that its target (a template, or a task of its project) runs with
its parameters now (422 with the reason), so that a mistake shows to the one who made it
rather than later as ticks that start nothing.
"""

import uuid
from datetime import UTC, datetime

from aiop.contracts import endpoints
from aiop.contracts.schedules import (
    ScheduleCreate,
    ScheduleEnabling,
    ScheduleList,
    ScheduleListQuery,
    ScheduleRef,
    ScheduleView,
    target_problem,
)
from aiop.servicekit import Service
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.adapters import schedules as store
from aiop.task_manager.adapters.schedules import Scheduled
from aiop.task_manager.domain.schedule import BadSchedule, check, next_tick
from aiop.task_manager.handlers import Handlers
from aiop.task_manager.scheduler import Scheduler, run_of
from aiop.task_manager.submissions import CannotRender


class ScheduleEndpoints:
    def __init__(self, handlers: Handlers, scheduler: Scheduler) -> None:
        self.h = handlers
        self.scheduler = scheduler

    def register(self, svc: Service) -> None:
        svc.answer(endpoints.CREATE_SCHEDULE, self.create)
        svc.answer(endpoints.LIST_SCHEDULES, self.listing)
        svc.answer(endpoints.GET_SCHEDULE, self.show)
        svc.answer(endpoints.DELETE_SCHEDULE, self.delete)
        svc.answer(endpoints.ENABLE_SCHEDULE, self.enable)

    async def create(self, ask: ScheduleCreate) -> ScheduleView:
        given, now = ask.schedule, datetime.now(UTC)
        try:
            check(given.cron, given.timezone)
        except BadSchedule as exc:
            raise QueryFailed(422, str(exc)) from exc
        problem = target_problem(given)
        if problem is not None:
            raise QueryFailed(422, problem)
        schedule_id = uuid.uuid4().hex
        trial = Scheduled(
            id=schedule_id, project=ask.project, name=given.name, cron=given.cron,
            timezone=given.timezone, template=given.template, task=given.task,
            parameters=given.parameters,
            policy=given.policy, catch_up_limit=given.catch_up_limit,
            created_by=ask.principal, next_at=now,
        )  # fmt: skip
        what = "task" if given.task is not None else "template"
        next_at = next_tick(given.cron, given.timezone, now)
        async with self.h.pool.acquire() as conn:
            try:
                await run_of(conn, self.h.templates, trial, now)
            except CannotRender as exc:
                raise QueryFailed(422, f"the schedule's {what} cannot run: {exc}") from exc
            view = await store.insert(conn, schedule_id, ask.project, given, ask.principal, next_at)
        if view is None:
            raise QueryFailed(409, f"project {ask.project} has a schedule {given.name} already")
        self.scheduler.wake()
        return view

    async def listing(self, ask: ScheduleListQuery) -> ScheduleList:
        async with self.h.pool.acquire() as conn:
            return ScheduleList(
                project=ask.project, schedules=await store.listed(conn, ask.project)
            )

    async def show(self, ask: ScheduleRef) -> ScheduleView:
        async with self.h.pool.acquire() as conn:
            return _found(ask, await store.shown(conn, ask.project, ask.name))

    async def delete(self, ask: ScheduleRef) -> ScheduleView:
        async with self.h.pool.acquire() as conn:
            return _found(ask, await store.delete(conn, ask.project, ask.name))

    async def enable(self, ask: ScheduleEnabling) -> ScheduleView:
        """Pause or resume; resuming starts from the next tick after now, so ticks due
        while paused never run."""
        async with self.h.pool.acquire() as conn, conn.transaction():
            row = await store.one(conn, ask.project, ask.name, locked=True)
            if row is None:
                raise _not_found(ask.project, ask.name)
            if row["enabled"] != ask.enabled:
                now: datetime = await conn.fetchval("select now()")
                next_at = next_tick(row["cron"], row["timezone"], now)
                await store.set_enabled(conn, row["id"], ask.enabled, next_at)
            view = await store.shown(conn, ask.project, ask.name)
        if ask.enabled:
            self.scheduler.wake()
        return _found(ask, view)


def _found(ask: ScheduleRef | ScheduleEnabling, view: ScheduleView | None) -> ScheduleView:
    if view is None:
        raise _not_found(ask.project, ask.name)
    return view


def _not_found(project: str, name: str) -> QueryFailed:
    return QueryFailed(404, f"no schedule {name} in project {project}")
