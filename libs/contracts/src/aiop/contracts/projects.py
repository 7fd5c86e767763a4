"""Projects and their tasks, as the gateway asks task-manager to keep them.

A project groups tasks, triggers and schedules. A task is a named unit of work in a
project: a template with parameters, or a workflow of its own; its runs are the
workflows that name it.
"""

from datetime import datetime
from typing import Annotated, Any

import msgspec

from aiop.contracts.workflow import WorkflowSpec

# A project's name is a subject token: it routes events and names KV keys.
ProjectName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]
# A template: ``name`` (its highest version) or ``name@version``.
TemplateRef = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$")
]
SET_LABEL = "aiop.set"  # the label every run of one project run (all its tasks) shares


class ProjectRef(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class NewProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/projects``; ``created_by`` is set by the gateway."""

    name: ProjectName
    description: str = ""
    created_by: str = ""


class ProjectView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    created_at: datetime
    created_by: str
    archived_at: datetime | None = None
    tasks: int = 0


class ProjectSaved(msgspec.Struct, frozen=True, kw_only=True):
    project: ProjectView
    created: bool  # False: it existed, made by the same principal (a retried create)


class ProjectsQuery(msgspec.Struct, frozen=True, kw_only=True):
    visible: list[str]  # the caller's projects: no other is listed
    archived: bool = False  # list archived ones too


class ProjectList(msgspec.Struct, frozen=True, kw_only=True):
    projects: list[ProjectView]


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /v1/projects/{project}/tasks/{name}``: a template (``name`` or
    ``name@version``) with parameters, or a workflow."""

    description: str = ""
    template: TemplateRef | None = None
    parameters: dict[str, Any] = {}
    workflow: WorkflowSpec | None = None


class SaveTask(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    name: str
    task: TaskSpec


class TaskRef(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    name: str


class TaskView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    project: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    template: str | None = None
    parameters: dict[str, Any] = {}
    workflow: WorkflowSpec | None = None


class TaskSaved(msgspec.Struct, frozen=True, kw_only=True):
    task: TaskView
    created: bool


class TaskList(msgspec.Struct, frozen=True, kw_only=True):
    tasks: list[TaskView]


class TaskRun(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/projects/{project}/tasks/{name}/runs``: parameters that
    change the task's own for this run."""

    parameters: dict[str, Any] = {}


class SetRun(msgspec.Struct, frozen=True, kw_only=True):
    """One task's run in a project run."""

    task: str
    workflow_id: str | None = None
    error: str | None = None  # why it did not start


class ProjectRun(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A project run: every task of the project started together, and how they did."""

    project: str
    set_id: str
    state: str  # "running" until every run has ended; then "succeeded" or "failed"
    runs: list[SetRun]
    counts: dict[str, int] = {}  # runs per state
    summary: dict[str, dict[str, Any]] = {}  # task -> its run's summary, step by step
