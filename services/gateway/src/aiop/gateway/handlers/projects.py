"""/v1/projects: projects and their tasks; running one task, or all of a project's tasks
as one set with a combined summary. task-manager keeps them; a project the caller's token
does not name is not even named (404)."""

import asyncio
import uuid
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts import endpoints as ep
from aiop.contracts.endpoints import Endpoint
from aiop.contracts.projects import (
    SET_LABEL,
    NewProject,
    ProjectList,
    ProjectRef,
    ProjectRun,
    ProjectSaved,
    ProjectsQuery,
    ProjectView,
    SaveTask,
    SetRun,
    TaskList,
    TaskRef,
    TaskRun,
    TaskSaved,
    TaskSpec,
    TaskView,
)
from aiop.contracts.queries import (
    ProjectGrant,
    WorkflowListQuery,
    WorkflowPage,
    WorkflowQuery,
    WorkflowView,
)
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.contracts.templates import TemplateRun
from aiop.contracts.workflow import WorkflowSpec, as_written, validate_spec
from aiop.gateway.access import checked, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, read_body, upstream
from aiop.gateway.handlers.templates import find_template, rendered_run
from aiop.gateway.handlers.workflows import publish_submission
from aiop.gateway.openapi import BEARER, IDEMPOTENCY_KEY, json_body, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
T = TypeVar("T", bound=msgspec.Struct)
MAX_SET = 100  # tasks run together in one project run


def router(gw: Gateway) -> APIRouter:
    """Projects: created (the creator is let in), listed, archived."""
    api = APIRouter(prefix="/v1/projects")
    Caller = Annotated[Claims, Depends(authenticated(gw))]
    reads = problems(400, 401, 403, 404, 429, 431, 502, 503)

    @api.post("", status_code=201, responses={
        201: json_reply("ProjectView", "Created; a new token names it"),
        200: json_reply("ProjectView", "Created before by the same principal"),
        **problems(400, 401, 409, 413, 415, 422, 429, 431, 502, 503),
    }, openapi_extra={**json_body("NewProject"), **BEARER})  # fmt: skip
    async def create(request: Request, caller: Caller) -> Response:
        new = await _body(gw, request, NewProject)
        checked(new.name, "project", "bad-project")
        saved = await _ask(gw, ep.CREATE_PROJECT, msgspec.structs.replace(new, created_by=caller.sub),
                           ProjectSaved)  # fmt: skip
        # Created first, then granted: a name someone else holds is never granted.
        await _ask(gw, ep.GRANT_PROJECT, ProjectGrant(principal=caller.sub, project=new.name))
        return _json(saved.project, 201 if saved.created else 200)

    @api.get("", responses={200: json_reply("ProjectList", "Your projects, by name"),
                            **problems(400, 401, 422, 429, 431, 502, 503)},
             openapi_extra=BEARER)  # fmt: skip
    async def list_projects(caller: Caller, archived: bool = False) -> Response:
        query = ProjectsQuery(visible=sorted(caller.projects), archived=archived)
        return _json(await _ask(gw, ep.LIST_PROJECTS, query, ProjectList))

    @api.get("/{project}", responses={200: json_reply("ProjectView", "The project"), **reads},
             openapi_extra=BEARER)  # fmt: skip
    async def show(project: str, caller: Caller) -> Response:
        return _json(await _project(gw, caller, project, "project:read"))

    @api.post("/{project}/archive", responses={
        200: json_reply("ProjectView", "Archived: it starts nothing new"), **reads,
    }, openapi_extra=BEARER)  # fmt: skip
    async def archive(project: str, caller: Caller) -> Response:
        await _project(gw, caller, project, "project:archive")
        return _json(await _ask(gw, ep.ARCHIVE_PROJECT, ProjectRef(name=project), ProjectView))

    return api


def task_router(gw: Gateway) -> APIRouter:
    """The tasks of a project: kept, listed, run one at a time or all as a set."""
    api = APIRouter(prefix="/v1/projects")
    Caller = Annotated[Claims, Depends(authenticated(gw))]
    reads = problems(400, 401, 403, 404, 429, 431, 502, 503)

    @api.put("/{project}/tasks/{name}", responses={
        201: json_reply("TaskView", "Created"), 200: json_reply("TaskView", "Replaced"),
        **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503),
    }, openapi_extra={**json_body("TaskSpec"), **BEARER})  # fmt: skip
    async def save_task(project: str, name: str, request: Request, caller: Caller) -> Response:
        await _project(gw, caller, project, "task:write")
        checked(name, "task", "bad-task")
        task = await _body(gw, request, TaskSpec)
        await _runnable(gw, project, task, {})  # refused now rather than at its first run
        saved = await _ask(gw, ep.SAVE_TASK, SaveTask(project=project, name=name, task=task),
                           TaskSaved)  # fmt: skip
        return _json(saved.task, 201 if saved.created else 200)

    @api.get("/{project}/tasks", responses={200: json_reply("TaskList", "The tasks"), **reads},
             openapi_extra=BEARER)  # fmt: skip
    async def list_tasks(project: str, caller: Caller) -> Response:
        await _project(gw, caller, project, "task:read")
        return _json(await _ask(gw, ep.LIST_TASKS, ProjectRef(name=project), TaskList))

    @api.get("/{project}/tasks/{name}", responses={
        200: json_reply("TaskView", "The task and its latest runs"), **reads,
    }, openapi_extra=BEARER)  # fmt: skip
    async def show_task(project: str, name: str, caller: Caller) -> Response:
        await _project(gw, caller, project, "task:read")
        task = await _ask(gw, ep.GET_TASK, TaskRef(project=project, name=name), TaskView)
        runs = WorkflowListQuery(visible=[project], project=project, task=name, limit=10)
        page = await _ask(gw, ep.LIST_WORKFLOWS, runs, WorkflowPage)
        body = msgspec.json.encode(task)[:-1] + b',"runs":' + msgspec.json.encode(page.workflows)
        return Response(body + b"}", media_type=JSON)

    @api.delete("/{project}/tasks/{name}", responses={
        200: json_reply("TaskView", "The task, now deleted; its runs stay"), **reads,
    }, openapi_extra=BEARER)  # fmt: skip
    async def delete_task(project: str, name: str, caller: Caller) -> Response:
        await _project(gw, caller, project, "task:write")
        return _json(await _ask(gw, ep.DELETE_TASK, TaskRef(project=project, name=name), TaskView))

    @api.post("/{project}/tasks/{name}/runs", status_code=202, responses={
        202: json_reply("Submitted", "The task's run was submitted"),
        **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503),
    }, openapi_extra={**json_body("TaskRun"), **BEARER, "parameters": [IDEMPOTENCY_KEY]})  # fmt: skip
    async def run_task(project: str, name: str, request: Request, caller: Caller) -> Response:
        await _active(await _project(gw, caller, project, "workflow:submit"))
        given = await _body(gw, request, TaskRun)
        task = await _ask(gw, ep.GET_TASK, TaskRef(project=project, name=name), TaskView)
        spec, template, parameters = await _runnable(gw, project, task_spec(task), given.parameters)
        return await publish_submission(gw, request, caller, spec, template, parameters, task=name)

    @api.post("/{project}/runs", status_code=202, responses={
        202: json_reply("ProjectRun", "Every task of the project was submitted, as one set"),
        **problems(400, 401, 403, 404, 409, 429, 431, 502, 503),
    }, openapi_extra={**BEARER, "parameters": [IDEMPOTENCY_KEY]})  # fmt: skip
    async def run_all(project: str, request: Request, caller: Caller) -> Response:
        await _active(await _project(gw, caller, project, "workflow:submit"))
        tasks = (await _ask(gw, ep.LIST_TASKS, ProjectRef(name=project), TaskList)).tasks
        if not tasks:
            raise Problem(409, f"project {project} has no tasks to run", kind="no-tasks")
        if len(tasks) > MAX_SET:
            raise Problem(409, f"a project run starts at most {MAX_SET} tasks", kind="too-many")
        key = request.headers.get("idempotency-key")
        set_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{caller.sub}\n{project}\n{key}").hex[:16] if (
            key) else uuid.uuid4().hex[:16]  # fmt: skip
        runs = [await _start_in_set(gw, request, caller, task, set_id) for task in tasks]
        result = ProjectRun(project=project, set_id=set_id, state="running", runs=runs)
        return _json(result, 202)

    @api.get("/{project}/runs/{set_id}", responses={
        200: json_reply("ProjectRun", "How the set's runs did, with their summaries"), **reads,
    }, openapi_extra=BEARER)  # fmt: skip
    async def show_set(project: str, set_id: str, caller: Caller) -> Response:
        await _project(gw, caller, project, "workflow:read")
        checked(set_id, "set id", "bad-set-id")
        return _json(await _set_summary(gw, project, set_id))

    return api


def task_spec(task: TaskView) -> TaskSpec:
    return TaskSpec(template=task.template, parameters=task.parameters, workflow=task.workflow)


async def _runnable(
    gw: Gateway, project: str, task: TaskSpec, changed: dict[str, Any]
) -> tuple[WorkflowSpec, str | None, dict[str, Any]]:
    """The workflow a task runs, its template's exact version and its parameters; a 422
    for a task that cannot run."""
    if (task.template is None) == (task.workflow is None):
        raise Problem(422, "a task is a template or a workflow: give one of them",
                      kind="validation")  # fmt: skip
    if task.workflow is not None:
        if changed or task.parameters:
            raise Problem(422, "parameters apply to tasks of a template", kind="bad-parameters")
        spec = msgspec.structs.replace(task.workflow, project=project)
        found = validate_spec(spec)
        if found:
            raise Problem(422, "the workflow cannot run", kind="invalid-workflow",
                          errors=[{"detail": p} for p in found])  # fmt: skip
        return spec, None, {}
    assert task.template is not None
    template = await find_template(gw, project, task.template)
    run = TemplateRun(parameters={**task.parameters, **changed})
    spec, filled = rendered_run(template, run, project)
    return spec, template.ref, filled


async def _start_in_set(
    gw: Gateway, request: Request, caller: Claims, task: TaskView, set_id: str
) -> SetRun:
    """Submit one task of a project run, labelled with the set; why not, if it cannot."""
    try:
        spec, template, parameters = await _runnable(gw, task.project, task_spec(task), {})
        spec = msgspec.structs.replace(spec, labels={**spec.labels, SET_LABEL: set_id})
        reply = await publish_submission(gw, request, caller, spec, template, parameters,
                                         task=task.name, key_suffix=f"/{task.name}")  # fmt: skip
    except Problem as exc:
        return SetRun(task=task.name, error=exc.detail)
    return SetRun(task=task.name, workflow_id=msgspec.json.decode(reply.body)["workflow_id"])


async def _set_summary(gw: Gateway, project: str, set_id: str) -> ProjectRun:
    query = WorkflowListQuery(visible=[project], project=project, labels={SET_LABEL: set_id},
                              limit=MAX_SET)  # fmt: skip
    listed = (await _ask(gw, ep.LIST_WORKFLOWS, query, WorkflowPage)).workflows
    if not listed:
        raise Problem(404, f"no project run {set_id} in project {project}", kind="not-found")
    views = await asyncio.gather(*(
        _ask(gw, ep.GET_WORKFLOW, WorkflowQuery(workflow_id=w.workflow_id), WorkflowView)
        for w in listed
    ))  # fmt: skip
    counts: dict[str, int] = {}
    for view in views:
        counts[view.state] = counts.get(view.state, 0) + 1
    ended = all(v.state in TERMINAL_WORKFLOW_STATES for v in views)
    state = ("succeeded" if set(counts) == {"succeeded"} else "failed") if ended else "running"
    return ProjectRun(
        project=project, set_id=set_id, state=state, counts=counts,
        runs=[SetRun(task=v.task or v.name, workflow_id=v.workflow_id) for v in views],
        summary={v.task or v.name: v.summary for v in views if v.summary},
    )  # fmt: skip


async def _project(gw: Gateway, caller: Claims, project: str, action: str) -> ProjectView:
    await project_for(gw, caller, project, action)  # 404 outside the caller's projects
    found: ProjectView = await _ask(gw, ep.GET_PROJECT, ProjectRef(name=project), ProjectView)
    return found


async def _active(project: ProjectView) -> None:
    if project.archived_at is not None:
        raise Problem(409, f"project {project.name} is archived: it starts nothing new",
                      kind="archived")  # fmt: skip


async def _ask(gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct,
               reply: type[T] | None = None) -> Any:  # fmt: skip
    """task-manager's (or auth's) answer, decoded; its 404 and 409 as the gateway's."""
    try:
        raw = await gw.svc.ask(endpoint, request)
    except QueryFailed as exc:
        if exc.code in (404, 409):
            kind = "not-found" if exc.code == 404 else "conflict"
            raise Problem(exc.code, exc.description, kind=kind) from exc
        raise upstream(exc, "task-manager") from exc
    return msgspec.json.decode(raw, type=reply) if reply else raw


async def _body(gw: Gateway, request: Request, shape: type[T]) -> T:
    body = await read_body(request, gw.max_body_bytes)
    try:
        raw = msgspec.json.decode(body or b"{}")
        if isinstance(raw, dict) and "workflow" in raw:  # a task's own workflow
            raw["workflow"] = as_written(raw["workflow"])
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        raise Problem(422, str(exc), kind="validation") from None
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None


def _json(value: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status, media_type=JSON)
