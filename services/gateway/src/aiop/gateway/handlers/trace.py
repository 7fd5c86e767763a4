"""GET /v1/workflows/{id}/trace: the run's spans across the services, where the services
write them to files this gateway can read (a trace dir, as `aiop up` sets)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiop.gateway.access import visible_view
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.adapters.traces import stored_trace
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get("/{workflow_id}/trace",
             responses={200: json_reply("WorkflowTrace", "The run's spans, by start time"),
                        **problems(400, 401, 403, 404, 429, 431, 502, 503)},
             openapi_extra=BEARER)  # fmt: skip
    async def trace(workflow_id: str, caller: Caller) -> Response:
        """The run's spans from every service, by start time. A 404 when they are not
        stored here (no trace dir, or written elsewhere): its ``trace_id`` is the one to
        look up in the OTLP backend."""
        view = await visible_view(gw, caller, workflow_id)
        if not view.trace_id:
            raise Problem(404, f"workflow {workflow_id} has no trace id yet", kind="not-found")
        found = None
        if gw.trace_dir is not None and gw.trace_dir.is_dir():
            found = await stored_trace(gw.trace_dir, view.trace_id)
        if found is None or not found.spans:
            raise Problem(
                404, f"the spans of trace {view.trace_id} are not stored here: look the trace"
                " id up in the OTLP backend", kind="trace-not-stored", trace_id=view.trace_id,
            )  # fmt: skip
        return Response(msgspec.json.encode(found), media_type=JSON)

    return api
