"""DELETE /v1/workflows: remove ended runs past their retention, with their logs.

task-manager removes the runs (and their steps); the gateway then purges each removed
run's output from the logs stream and forgets any answer it kept for it.
"""

import json
from datetime import timedelta
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from aiop.contracts.endpoints import PRUNE_WORKFLOWS
from aiop.contracts.events import StepOutputAppended, now
from aiop.contracts.queries import Pruned, PruneRequest, RunsPruned
from aiop.contracts.subjects import STREAM_LOGS
from aiop.gateway.access import allow, checked
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, upstream
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
MAX_AGE_S = 10 * 365 * 86400.0


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.delete(
        "",
        responses={
            200: json_reply("RunsPruned", "The runs removed, and how many log entries went"),
            **problems(400, 401, 403, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def prune(
        caller: Caller,
        older_than_s: Annotated[float, Query(ge=0, le=MAX_AGE_S,
                                             description="Runs that ended this long ago.")],
        project: Annotated[str | None, Query(description="One project; default: all of yours.")] = None,
        dry_run: Annotated[bool, Query(description="Only say what would go.")] = False,
    ) -> Response:  # fmt: skip
        projects = sorted(caller.projects) if project is None else [project]
        for name in projects:
            checked(name, "project", "bad-project")
            if name not in caller.projects:
                raise Problem(404, f"no project {name}", kind="not-found")
            await allow(gw, caller.sub, name, "workflow:delete")
        ask = PruneRequest(projects=projects, before=now() - timedelta(seconds=older_than_s),
                           dry_run=dry_run)  # fmt: skip
        try:
            pruned = msgspec.json.decode(await gw.svc.ask(PRUNE_WORKFLOWS, ask, 30.0), type=Pruned)
        except QueryFailed as exc:
            raise upstream(exc, "task-manager") from exc
        logs = 0 if dry_run else await _purge_logs(gw, pruned.workflow_ids)
        body = RunsPruned(workflow_ids=pruned.workflow_ids, dry_run=dry_run,
                          workflows_removed=len(pruned.workflow_ids), log_entries_removed=logs)  # fmt: skip
        return Response(msgspec.json.encode(body), media_type=JSON)

    return api


async def _purge_logs(gw: Gateway, workflow_ids: list[str]) -> int:
    """Remove the removed runs' output from the logs stream; how many entries went."""
    purged = 0
    for workflow_id in workflow_ids:
        gw.finished.forget(workflow_id)
        gw.recent.forget(workflow_id)
        # The API's own answer counts what went; nats-py's purge_stream says only whether.
        request = json.dumps({"filter": StepOutputAppended.filter(workflow_id=workflow_id)})
        reply = await gw.svc.nc.request(f"$JS.API.STREAM.PURGE.{STREAM_LOGS}", request.encode(),
                                        timeout=10)  # fmt: skip
        purged += int(json.loads(reply.data).get("purged", 0))
    return purged
