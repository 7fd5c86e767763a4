"""Cron schedules: a template or a project's task started on time, managed through
task-manager's endpoints.

A schedule belongs to a project and is named by ``(project, name)``. Its cron expression
has five fields, or six with seconds last (croniter's convention: ``* * * * * */10`` is
every ten seconds), and is read in its IANA timezone. A tick missed while no
task-manager ran is handled by the schedule's ``policy`` (ADR 0011):

- ``skip``: ticks more than a few seconds late are not run, except the latest of them,
  which runs once, late: a daily job still runs after an outage, and only once;
- ``catch_up``: every missed tick runs, at most ``catch_up_limit`` of them (the latest).
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

NAME = r"^[A-Za-z0-9_\-]{1,128}$"  # a subject token, as every name that reaches the bus
REF = r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$"  # a template ref
MAX_CATCH_UP = 100
Policy = Literal["skip", "catch_up"]


class ScheduleIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A schedule as a client asks for it (``POST /v1/schedules``)."""

    name: Annotated[str, msgspec.Meta(pattern=NAME)]
    cron: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    # What it starts, exactly one of: a template (name[@version]) or a task of its project.
    template: Annotated[str, msgspec.Meta(pattern=REF)] | None = None
    task: Annotated[str, msgspec.Meta(pattern=NAME)] | None = None
    # May hold ${{ schedule.tick }}: the tick, ISO 8601. A task's: over its own parameters.
    parameters: dict[str, Any] = {}
    policy: Policy = "skip"
    catch_up_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_CATCH_UP)] = 10
    enabled: bool = True


def target_problem(given: "ScheduleIn") -> str | None:
    """Why ``given`` names no one target (a template or a task, exactly one); None if it
    does."""
    if (given.template is None) == (given.task is None):
        return "a schedule starts a template or a task: give exactly one of them"
    return None


class ScheduleCreate(msgspec.Struct, frozen=True, kw_only=True):
    """Create ``schedule`` in ``project``; its runs are ``principal``'s."""

    project: str
    principal: str
    schedule: ScheduleIn


class ScheduleRef(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    name: str


class ScheduleListQuery(msgspec.Struct, frozen=True, kw_only=True):
    project: str


class ScheduleEnabling(msgspec.Struct, frozen=True, kw_only=True):
    """Pause (``enabled`` false) or resume a schedule. Ticks due while it was paused are
    not run: it resumes at its next tick after now."""

    project: str
    name: str
    enabled: bool


class TickView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tick that fired: the workflow it started, or why it started none."""

    tick: datetime
    fired_at: datetime
    workflow_id: str | None = None
    state: str | None = None  # the workflow's state, once task-manager stored it
    error: str | None = None  # the target could not run (no template or task, archived project)


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    project: str
    name: str
    cron: str
    timezone: str
    template: str | None = None  # what it starts: a template, or
    task: str | None = None  # a task of its project
    parameters: dict[str, Any] = {}
    policy: Policy
    catch_up_limit: int
    enabled: bool
    next_at: datetime | None = None  # when it fires next; None while paused
    created_at: datetime
    created_by: str
    ticks: list[TickView] = []  # the latest first (shown for one schedule, not in lists)


class ScheduleList(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    schedules: list[ScheduleView]
