"""GET /v1/stats: how the caller's runs fare over a window, counted by task-manager in
PostgreSQL (adapters/stats.py there), with the run list's filters and scope."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from aiop.contracts.endpoints import WORKFLOW_STATS
from aiop.contracts.events import now
from aiop.contracts.stats import MAX_BUCKETS, StatsQuery
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, upstream
from aiop.gateway.handlers.history import REF, TOKEN, Label, When, _labels, _time
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
DEFAULT_WINDOW = timedelta(hours=1)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/stats")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: json_reply("WorkflowStats", "Runs per state, and per bucket what ended"),
            **problems(401, 403, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def stats(
        caller: Caller,
        project: Annotated[str | None, Query(description="One project; default: all of yours.", pattern=TOKEN)] = None,
        task: Annotated[str | None, Query(description="Runs of this task.", pattern=TOKEN)] = None,
        template: Annotated[str | None, Query(description="name or name@version.", pattern=REF)] = None,
        label: Annotated[list[Label], Query(description="key=value; every one must match.")] = [],  # noqa: B006
        since: When = None,
        until: When = None,
        bucket_s: Annotated[int, Query(ge=1, le=86400, description="Seconds per bucket.")] = 60,
    ) -> Response:  # fmt: skip
        """``counts``: the runs submitted in [since, until) by their state now, and
        ``total``; ``series``: per ``bucket_s`` from ``since``, the runs that ended in it
        (``finished``, any end), those that failed or timed out (``failed``), and the 50th
        and 95th percentile of their latency, submitted to finished, in milliseconds.
        The window defaults to the last hour; only the caller's projects count."""
        if project is not None and project not in caller.projects:
            raise Problem(404, f"no project {project}", kind="not-found")
        end = _time(until, "until") or now()
        start = _time(since, "since") or end - DEFAULT_WINDOW
        if start >= end:
            raise Problem(422, "since must be before until", kind="validation")
        if (end - start) / timedelta(seconds=bucket_s) > MAX_BUCKETS:
            raise Problem(422, f"at most {MAX_BUCKETS} buckets: widen bucket_s or narrow"
                          " the window", kind="validation")  # fmt: skip
        query = StatsQuery(
            visible=sorted(caller.projects), since=start, until=end, bucket_s=bucket_s,
            project=project, task=task, template=template, labels=_labels(label),
        )  # fmt: skip
        try:
            return Response(await gw.svc.ask(WORKFLOW_STATS, query), media_type=JSON)
        except QueryFailed as exc:
            raise upstream(exc, "task-manager") from exc

    return api
