"""POST /v1/workflows, GET /v1/workflows/{id}[/report], POST /v1/workflows/{id}/cancel."""

import asyncio
from typing import Annotated, Any

import msgspec
import nats.js.errors
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts.cancels import CancelRequest
from aiop.contracts.endpoints import GET_REPORT, GET_WORKFLOW
from aiop.contracts.events import Origin, WorkflowSubmitted, now
from aiop.contracts.queries import (
    CancelReply,
    WorkflowQuery,
    WorkflowReport,
    WorkflowView,
)
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.contracts.workflow import WorkflowSpec
from aiop.gateway.access import (
    allow,
    checked_workflow_id,
    current_view,
    resolve_view,
    visible_view,
    workflow_not_found,
)
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, read_body, upstream
from aiop.gateway.domain.finished import is_final
from aiop.gateway.domain.status import encode_status
from aiop.gateway.domain.submission import (
    BadShape,
    CannotRun,
    MalformedBody,
    body_digest,
    parse_spec,
    workflow_id_for,
)
from aiop.gateway.openapi import BEARER, IDEMPOTENCY_KEY, json_body, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
MAX_IDEMPOTENCY_KEY = 256
_view = msgspec.json.Decoder(WorkflowView)
_report = msgspec.json.Decoder(WorkflowReport)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.post(
        "", status_code=202,
        responses={
            202: json_reply("Submitted", "Accepted: it will run; follow status_url"),
            **problems(400, 401, 403, 409, 413, 415, 422, 429, 431, 503),
        },
        openapi_extra={**json_body("WorkflowSpec"), **BEARER, "parameters": [IDEMPOTENCY_KEY]},
    )  # fmt: skip
    async def submit(request: Request, caller: Caller) -> Response:
        spec = await _read_spec(gw, request)
        return await publish_submission(gw, request, caller, spec)

    @api.get(
        "/{workflow_id}",
        responses={
            200: json_reply("WorkflowStatus", "The workflow, each step, and its summary"),
            **problems(400, 401, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def status(workflow_id: str, caller: Caller) -> Response:
        query = WorkflowQuery(workflow_id=checked_workflow_id(workflow_id))
        if (finished := gw.finished.get(workflow_id)) is not None:
            project, body = finished
            if project not in caller.projects:
                raise workflow_not_found(workflow_id)
            return Response(body, media_type=JSON)
        view_reply, report_reply = await asyncio.gather(
            gw.svc.ask(GET_WORKFLOW, query),
            gw.svc.ask(GET_REPORT, query),
            return_exceptions=True,
        )
        view = resolve_view(gw, workflow_id, view_reply)
        if view is None or view.project not in caller.projects:
            raise workflow_not_found(workflow_id)  # another project's workflow is not even named
        report = _valid_report(report_reply)
        body = encode_status(view, report[1] if report else None)
        if is_final(view, report[0] if report else None):
            gw.finished.keep(workflow_id, view.project, body)
        return Response(body, media_type=JSON)

    @api.get(
        "/{workflow_id}/report",
        responses={
            200: json_reply("WorkflowReport", "The workflow's summary"),
            **problems(400, 401, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def report(workflow_id: str, caller: Caller) -> Response:
        query = WorkflowQuery(workflow_id=checked_workflow_id(workflow_id))
        body = await _report_of(gw, query, caller)
        project = _report.decode(body).project or await _project_of(gw, query)
        if project not in caller.projects:
            raise workflow_not_found(workflow_id)  # as for its status: not even named
        return Response(body, media_type=JSON)

    @api.post(
        "/{workflow_id}/cancel", status_code=202,
        responses={
            202: json_reply("CancelReply", "Cancel requested: running steps are stopped,"
                            " steps not started never start, the workflow ends cancelled"),
            200: json_reply("CancelReply", "The workflow had already ended: nothing changed"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def cancel(workflow_id: str, caller: Caller) -> Response:
        return await _cancel(gw, workflow_id, caller)

    return api


async def _cancel(gw: Gateway, workflow_id: str, caller: Claims) -> Response:
    view = await visible_view(gw, caller, workflow_id)
    url = f"/v1/workflows/{workflow_id}"
    if view.state in TERMINAL_WORKFLOW_STATES:
        detail = f"the workflow already ended {view.state}; nothing to cancel"
        reply = CancelReply(workflow_id=workflow_id, state=view.state, detail=detail,
                            status_url=url)  # fmt: skip
        return Response(msgspec.json.encode(reply), 200, media_type=JSON)
    await allow(gw, caller.sub, view.project, "workflow:cancel")
    request = CancelRequest(principal=caller.sub, requested_at=now())
    detail = (
        "cancel requested"
        if await _ask_cancel(gw, workflow_id, request)
        else ("cancel already requested")
    )
    reply = CancelReply(
        workflow_id=workflow_id, state=view.state, status_url=url,
        detail=f"{detail}: running steps are stopped and the workflow ends cancelled",
    )  # fmt: skip
    return Response(msgspec.json.encode(reply), 202, {"Location": url}, media_type=JSON)


async def _ask_cancel(gw: Gateway, workflow_id: str, request: CancelRequest) -> bool:
    """Create the workflow's cancel request; False when one exists already (the first
    one stands: a second cancel changes nothing)."""
    if gw.cancels is None:
        raise Problem(503, "the gateway is not connected to the bus yet", kind="unavailable")
    try:
        await gw.cancels.create(workflow_id, msgspec.json.encode(request))
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    except Exception as exc:
        raise Problem(503, f"cannot record the cancel: {exc!r}", kind="unavailable") from exc
    return True


async def _read_spec(gw: Gateway, request: Request) -> WorkflowSpec:
    try:
        return parse_spec(await read_body(request, gw.max_body_bytes))
    except MalformedBody as exc:
        raise Problem(400, f"the body is not JSON: {exc}", kind="malformed") from exc
    except BadShape as exc:
        errors = [msgspec.structs.asdict(e) for e in exc.errors]
        raise Problem(422, "the body is not a workflow", kind="validation", errors=errors) from exc
    except CannotRun as exc:
        errors = [{"detail": p} for p in exc.problems]
        raise Problem(
            422, "the workflow cannot run", kind="invalid-workflow", errors=errors
        ) from exc


async def _report_of(gw: Gateway, query: WorkflowQuery, caller: Claims) -> bytes:
    """reporter's summary; for one this gateway just accepted and reporter has not heard
    of yet, a summary saying it was submitted (as its status says)."""
    try:
        return await gw.svc.ask(GET_REPORT, query)
    except QueryFailed as exc:
        if exc.code != 404:
            raise upstream(exc, "reporter") from exc
        recent = gw.recent.view(query.workflow_id)
        if recent is None or recent.project not in caller.projects:
            raise workflow_not_found(query.workflow_id) from exc
        report = WorkflowReport(
            workflow_id=query.workflow_id, outcome="submitted", project=recent.project
        )
        return msgspec.json.encode(report)


async def _project_of(gw: Gateway, query: WorkflowQuery) -> str | None:
    """The workflow's project from task-manager, for reports folded before they named it."""
    try:
        reply = await gw.svc.ask(GET_WORKFLOW, query)
    except QueryFailed as exc:
        if exc.code == 404:
            return None
        raise upstream(exc, "task-manager") from exc
    return _view.decode(reply).project


def _valid_report(reply: bytes | BaseException) -> tuple[WorkflowReport, bytes] | None:
    """reporter's report and its JSON if it answered with one; the status is useful
    without it."""
    if isinstance(reply, BaseException):
        return None
    try:
        return _report.decode(reply), reply
    except msgspec.DecodeError:
        return None


async def publish_submission(
    gw: Gateway,
    request: Request,
    caller: Claims,
    spec: WorkflowSpec,
    template: str | None = None,
    parameters: dict[str, Any] | None = None,
    *,
    origin: Origin | None = None,
    task: str | None = None,
    key_suffix: str = "",
) -> Response:
    """Submit ``spec`` for the caller (honouring Idempotency-Key): the 202 answer.

    The same key with the same body names the same workflow, which is submitted once;
    the same key with another body is a 409. One request that submits several workflows
    gives each its own ``key_suffix``."""
    await allow(gw, caller.sub, spec.project, "workflow:submit")
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Problem(400, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    key = None if key is None else key + key_suffix
    workflow_id = workflow_id_for(caller.sub, key)
    digest = None if key is None else body_digest(spec, template, parameters or {})
    if key is None or not await _submitted_before(gw, workflow_id, digest):
        if origin is None:
            said = request.headers.get("aiop-origin")  # the CLI and the MCP server say so
            origin = Origin(kind=said if said in ("cli", "mcp") else "api")
        # A deterministic event id: JetStream drops a retried submit as a duplicate.
        event = WorkflowSubmitted(
            event_id=f"submitted-{workflow_id}", workflow_id=workflow_id, spec=spec,
            principal=caller.sub, template=template, parameters=parameters or {},
            origin=origin, task=task, body_digest=digest,
        )  # fmt: skip
        try:
            await gw.svc.bus.publish(event)
        except Exception as exc:
            raise Problem(503, f"cannot publish the workflow: {exc!r}", kind="unavailable") from exc
        gw.recent.add(workflow_id, spec.name, spec.project, digest=digest)
    url = f"/v1/workflows/{workflow_id}"
    reply: dict[str, Any] = {"workflow_id": workflow_id, "status_url": url}
    if template is not None:
        reply["template"] = template
    return Response(msgspec.json.encode(reply), 202, {"Location": url}, media_type=JSON)


async def _submitted_before(gw: Gateway, workflow_id: str, digest: str | None) -> bool:
    """Whether the keyed submission ``workflow_id`` was made before: with the same body
    (True), or with another one (409). When task-manager cannot say, the submission goes
    ahead: the bus drops it if it is a repeat, and the first one stands."""
    try:
        earlier = await current_view(gw, workflow_id)
    except Problem:
        return False
    if earlier is None:
        return False
    if earlier.body_digest is not None and earlier.body_digest != digest:
        raise Problem(
            409, "this Idempotency-Key was used before with another body: use a new key"
            f" for another workflow (the first one is {workflow_id})",
            kind="idempotency-conflict",
        )  # fmt: skip
    return True
