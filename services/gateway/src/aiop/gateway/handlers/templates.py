"""GET /v1/templates[/{ref}], PUT /v1/templates/{template}, POST /v1/templates/{ref}/runs.

``ref`` is ``name`` (the highest version) or ``name@version``. A project sees its own
templates and the built-in ones; another project's are not even named (404).
"""

import re
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request
from nats.js.kv import KeyValue
from starlette.responses import Response

from aiop.contracts.secrets import DEFAULT_PROJECT
from aiop.contracts.templates import (
    BadParameters,
    Template,
    TemplateInfo,
    TemplateList,
    TemplateRun,
    check_template,
    render,
    split_ref,
    version_order,
)
from aiop.contracts.workflow import InvalidWorkflow, WorkflowSpec
from aiop.gateway.access import project_for
from aiop.gateway.adapters import templates as store
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, read_body, request_json
from aiop.gateway.handlers.workflows import publish_submission
from aiop.gateway.openapi import BEARER, IDEMPOTENCY_KEY, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
T = TypeVar("T")
REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$")


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/templates")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: json_reply("TemplateList", "The project's templates and the built-in ones"),
            **problems(400, 401, 403, 404, 429, 431, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_templates(caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "template:read")
        found = await _unavailable_on_error(store.visible(_bucket(gw), project), "list templates")
        by_name: dict[str, list[Template]] = {}
        for template in found:
            by_name.setdefault(template.name, []).append(template)
        infos = [_info(sorted(v, key=lambda t: version_order(t.version))) for v in by_name.values()]
        body = TemplateList(project=project, templates=sorted(infos, key=lambda i: i.name))
        return Response(msgspec.json.encode(body), media_type=JSON)

    @api.get(
        "/{ref}",
        responses={
            200: json_reply("Template", "The template: its parameters' schema and workflow"),
            **problems(400, 401, 403, 404, 429, 431, 503),
        },
        openapi_extra=BEARER,
    )
    async def show_template(ref: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "template:read")
        template = await find_template(gw, project, ref)
        return Response(msgspec.json.encode(template), media_type=JSON)

    @api.put(
        "/{ref}",
        responses={
            201: json_reply("Template", "Registered"),
            200: json_reply("Template", "That version is registered already, the same"),
            **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 503),
        },
        openapi_extra={**json_body("Template"), **BEARER},
    )  # fmt: skip
    async def register(
        ref: str, request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        project = await project_for(gw, caller, project, "template:write")
        given = _template_in(ref, project, await request_json(gw, request))
        kv = _bucket(gw)
        builtin = await _unavailable_on_error(store.builtin_versions(kv, given.name), "read")
        if builtin:
            raise Problem(409, f"{given.name} is a built-in template's name", kind="conflict")
        try:
            stored, new = await store.register(kv, msgspec.structs.replace(given, created_at=None))
        except store.VersionTaken as exc:
            raise Problem(409, str(exc), kind="conflict") from None
        except Exception as exc:
            raise Problem(503, f"cannot store the template: {type(exc).__name__}",
                          kind="unavailable") from exc  # fmt: skip
        return Response(msgspec.json.encode(stored), 201 if new else 200, media_type=JSON)

    @api.post(
        "/{ref}/runs", status_code=202,
        responses={
            202: json_reply("Submitted", "Rendered and accepted: it will run; follow status_url"),
            **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 503),
        },
        openapi_extra={**json_body("TemplateRun"), **BEARER, "parameters": [IDEMPOTENCY_KEY]},
    )  # fmt: skip
    async def run_template(
        ref: str, request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        project = await project_for(gw, caller, project, "template:read")
        template = await find_template(gw, project, ref)
        run = await _run_in(gw, request)
        spec, filled = rendered_run(template, run, project)
        return await publish_submission(gw, request, caller, spec, template.ref, filled)

    return api


def _template_in(name: str, project: str, raw: Any) -> Template:
    """The body of a PUT as a template that can be registered; a 422 if it is not."""
    if not isinstance(raw, dict):
        raise Problem(422, "the body must be a template object", kind="validation")
    try:
        given = msgspec.convert({"name": name, **raw, "project": project}, Template)
    except msgspec.ValidationError as exc:
        raise Problem(422, f"not a template: {exc}", kind="validation") from None
    if given.name != name:
        raise Problem(422, f"the body names {given.name!r}, the path {name!r}", kind="validation")
    found = check_template(given)
    if found:
        raise Problem(422, "; ".join(found), kind="invalid-template",
                      errors=[{"detail": p} for p in found])  # fmt: skip
    return given


async def _run_in(gw: Gateway, request: Request) -> TemplateRun:
    body = await read_body(request, gw.max_body_bytes)
    try:
        return msgspec.json.decode(body or b"{}", type=TemplateRun)
    except msgspec.ValidationError as exc:
        raise Problem(422, f"the body must be {{\"parameters\": {{...}}}}: {exc}",
                      kind="validation") from None  # fmt: skip
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None


def rendered_run(
    template: Template, run: TemplateRun, project: str
) -> tuple[WorkflowSpec, dict[str, Any]]:
    try:
        spec, filled = render(template, run.parameters, project)
    except BadParameters as exc:
        raise Problem(422, f"bad parameters for {template.ref}: {exc}", kind="bad-parameters",
                      errors=[_pointer(e) for e in exc.errors]) from None  # fmt: skip
    except InvalidWorkflow as exc:
        raise Problem(422, f"{template.ref} renders to a workflow that cannot run: {exc}",
                      kind="invalid-workflow") from None  # fmt: skip
    if run.labels:
        spec = msgspec.structs.replace(spec, labels={**spec.labels, **run.labels})
    return spec, filled


async def find_template(gw: Gateway, project: str, ref: str) -> Template:
    if not REF.match(ref):
        raise Problem(400, f"template {ref!r} must be name or name@version", kind="bad-template")
    name, version = split_ref(ref)
    found = await _unavailable_on_error(store.find(_bucket(gw), project, name, version), "read")
    if found is None:
        raise Problem(404, f"no template {ref} in project {project}", kind="not-found")
    return found


def _info(versions: list[Template]) -> TemplateInfo:
    latest = versions[-1]
    return TemplateInfo(
        name=latest.name, version=latest.version, versions=[t.version for t in versions],
        description=latest.description, builtin=latest.builtin, parameters=latest.parameters,
    )  # fmt: skip


def _pointer(error: str) -> dict[str, str]:
    """``"epochs: 0 is less than the minimum of 1"`` as a field error at
    ``/parameters/epochs``."""
    where, _, detail = error.partition(": ")
    if where == "(parameters)":
        return {"pointer": "/parameters", "detail": detail}
    return {"pointer": "/parameters/" + where, "detail": detail}


async def _unavailable_on_error(work: Awaitable[T], what: str) -> T:
    try:
        return await work
    except Exception as exc:
        raise Problem(503, f"cannot {what}: {type(exc).__name__}", kind="unavailable") from exc


def _bucket(gw: Gateway) -> KeyValue:
    if gw.templates is None:
        raise Problem(503, "the gateway is not connected to the bus yet", kind="unavailable")
    return gw.templates
