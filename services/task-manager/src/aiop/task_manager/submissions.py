"""Runs task-manager starts itself (a trigger's event, a schedule's tick, a task): each
is a WorkflowSubmitted written to the outbox in the transaction that decided it, so it
is published once the decision is stored and never without it. It then takes the same
path as a client's submission: validated, stored, answered.

The workflow id is given by the caller and derived from what decided the run (the event
id, the tick): the same decision taken twice names the same workflow, which is stored
once."""

import uuid
from typing import Any

import msgspec

from aiop.contracts.events import Origin, WorkflowSubmitted
from aiop.contracts.templates import BadParameters, InvalidTemplate, render, split_ref
from aiop.contracts.workflow import InvalidWorkflow, WorkflowSpec, validate_spec
from aiop.servicekit import templates as catalogue
from aiop.task_manager.adapters import Conn, projects
from aiop.task_manager.adapters.outbox import OutboxRow, outbox_row

# Fixed forever: changing it would give the same decision a second workflow.
RUN_NAMESPACE = uuid.UUID("0b6c5f7e-3f0a-4c55-8a43-9d2f3f2c1a77")


def run_id(*decided_by: str) -> str:
    """The workflow id for a run decided by ``decided_by`` (trigger name and event id,
    schedule name and tick, ...): the same inputs always give the same id."""
    return uuid.uuid5(RUN_NAMESPACE, "\n".join(decided_by)).hex


def submission(
    spec: WorkflowSpec,
    *,
    workflow_id: str,
    principal: str,
    origin: Origin,
    template: str | None = None,
    parameters: dict[str, Any] | None = None,
    task: str | None = None,
) -> OutboxRow:
    """The outbox row that submits ``spec`` as ``workflow_id``."""
    event = WorkflowSubmitted(
        event_id=f"submitted-{workflow_id}",  # as the gateway's: JetStream drops a repeat
        workflow_id=workflow_id,
        spec=spec,
        principal=principal,
        template=template,
        parameters=parameters or {},
        origin=origin,
        task=task,
    )
    return outbox_row(event)


class CannotRender(ValueError):
    """A template that is not there, or parameters it refuses: the reason, for a record."""


async def rendered(
    kv: Any, project: str, ref: str, parameters: dict[str, Any]
) -> tuple[WorkflowSpec, str, dict[str, Any]]:
    """Template ``ref`` (``name`` or ``name@version``) as ``project`` sees it, rendered
    with ``parameters``: the workflow, the exact ``name@version`` and the parameters with
    defaults filled in. CannotRender says why not."""
    name, version = split_ref(ref)
    template = await catalogue.find(kv, project, name, version)
    if template is None:
        raise CannotRender(f"no template {ref} in project {project}")
    try:
        spec, filled = render(template, parameters, project)
    except (BadParameters, InvalidWorkflow, InvalidTemplate) as exc:
        raise CannotRender(f"{template.ref}: {exc}") from exc
    return spec, template.ref, filled


async def check_active(conn: Conn, project: str) -> None:
    """CannotRender if ``project`` is archived: it starts nothing new. A project with no
    row (named only by tokens, as before projects were kept) is not archived."""
    found = await projects.get_project(conn, project)
    if found is not None and found.archived_at is not None:
        raise CannotRender(f"project {project} is archived: it starts nothing new")


async def task_rendered(
    conn: Conn, kv: Any, project: str, name: str, parameters: dict[str, Any]
) -> tuple[WorkflowSpec, str | None, dict[str, Any]]:
    """Task ``name`` of ``project`` as a run: its workflow, or its template rendered with
    its parameters updated by ``parameters``; then the exact template version (None for
    a workflow) and the parameters. CannotRender says why not (no such task, an archived
    project, parameters it refuses)."""
    await check_active(conn, project)
    task = await projects.get_task(conn, project, name)
    if task is None:
        raise CannotRender(f"no task {name} in project {project}")
    if task.workflow is not None:
        if parameters:
            raise CannotRender(f"task {name} is a workflow: parameters apply to tasks of a "
                               "template")  # fmt: skip
        spec = msgspec.structs.replace(task.workflow, project=project)
        problems = validate_spec(spec)
        if problems:
            raise CannotRender(f"task {name}: " + "; ".join(problems))
        return spec, None, {}
    assert task.template is not None
    return await rendered(kv, project, task.template, {**task.parameters, **parameters})
