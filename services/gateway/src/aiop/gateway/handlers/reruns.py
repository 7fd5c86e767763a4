"""POST /v1/workflows/{id}/rerun: run a workflow again from a step, taking the results
of the steps before it from the earlier run; optionally with changed parameters."""

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts.endpoints import GET_RUN_SOURCE
from aiop.contracts.events import Origin
from aiop.contracts.queries import RerunRequest, RunSource, WorkflowQuery
from aiop.contracts.templates import BadParameters, InvalidTemplate, render, split_ref
from aiop.contracts.workflow import InvalidWorkflow, WorkflowSpec
from aiop.gateway.access import visible_view
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, read_body, upstream
from aiop.gateway.domain.rerun import CannotRerun, check_rerunnable, reused_steps
from aiop.gateway.handlers.workflows import publish_submission
from aiop.gateway.openapi import BEARER, IDEMPOTENCY_KEY, json_body, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit import templates as catalogue
from aiop.servicekit.rpc import QueryFailed

_source = msgspec.json.Decoder(RunSource)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.post(
        "/{workflow_id}/rerun", status_code=202,
        responses={
            202: json_reply("Submitted", "The rerun was submitted; it links to the run it reruns"),
            **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("RerunRequest"), **BEARER, "parameters": [IDEMPOTENCY_KEY]},
    )  # fmt: skip
    async def rerun(workflow_id: str, request: Request, caller: Caller) -> Response:
        asked = await _request(gw, request)
        view = await visible_view(gw, caller, workflow_id)
        try:
            check_rerunnable(view.state, asked.from_step)
        except CannotRerun as exc:
            raise Problem(409, str(exc), kind="cannot-rerun") from exc
        source = await _source_of(gw, workflow_id)
        spec, parameters = await _respecified(gw, source, asked.parameters)
        try:
            reuse = reused_steps(spec, view.steps, asked.from_step)
        except CannotRerun as exc:
            raise Problem(422, str(exc), kind="cannot-rerun") from exc
        return await publish_submission(
            gw, request, caller, msgspec.structs.replace(spec, reuse=reuse), source.template,
            parameters, origin=Origin(kind="rerun", rerun_of=workflow_id), task=source.task,
        )  # fmt: skip

    return api


async def _request(gw: Gateway, request: Request) -> RerunRequest:
    body = await read_body(request, gw.max_body_bytes)
    try:
        return msgspec.json.decode(body or b"{}", type=RerunRequest)
    except msgspec.ValidationError as exc:
        raise Problem(422, f"not a rerun request: {exc}", kind="validation") from None
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None


async def _source_of(gw: Gateway, workflow_id: str) -> RunSource:
    try:
        return _source.decode(
            await gw.svc.ask(GET_RUN_SOURCE, WorkflowQuery(workflow_id=workflow_id))
        )
    except QueryFailed as exc:
        if exc.code == 404:  # accepted a moment ago, not stored yet: it has not ended either
            raise Problem(409, "the workflow has not been stored yet", kind="cannot-rerun") from exc
        raise upstream(exc, "task-manager") from exc


async def _respecified(
    gw: Gateway, source: RunSource, changed: dict[str, Any]
) -> tuple[WorkflowSpec, dict[str, Any]]:
    """The workflow to run again: the same one, or, with changed parameters, its template
    (the same version) rendered again with them."""
    if not changed:
        return source.spec, source.parameters
    if source.template is None:
        raise Problem(422, "parameters apply to runs of a template; this run has none",
                      kind="bad-parameters")  # fmt: skip
    name, version = split_ref(source.template)
    template = None if gw.templates is None else await catalogue.find(
        gw.templates, source.project, name, version
    )  # fmt: skip
    if template is None:
        raise Problem(409, f"template {source.template} is no longer there", kind="cannot-rerun")
    try:
        spec, filled = render(template, {**source.parameters, **changed}, source.project)
    except (BadParameters, InvalidWorkflow, InvalidTemplate) as exc:
        raise Problem(
            422, f"bad parameters for {template.ref}: {exc}", kind="bad-parameters"
        ) from exc
    return msgspec.structs.replace(spec, labels={**spec.labels, **source.spec.labels}), filled
