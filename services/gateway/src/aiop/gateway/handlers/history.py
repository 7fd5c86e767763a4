"""GET /v1/workflows: the runs of the caller's projects, filtered, newest first, a page
at a time (task-manager keeps the history)."""

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import StringConstraints
from starlette.responses import Response

from aiop.contracts.endpoints import LIST_WORKFLOWS
from aiop.contracts.queries import WorkflowListQuery
from aiop.contracts.states import WorkflowState
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, upstream
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

JSON = "application/json"
# Every filter is a constraint the document states: a value outside it is a 422 before
# anything is asked, and PostgreSQL never sees a character it cannot keep (NUL).
TOKEN = r"^[A-Za-z0-9_\-]{1,128}$"
REF = r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$"
Label = Annotated[str, StringConstraints(pattern=r"^[^=\x00]+=[^\x00]*$")]
# RFC 3339, as the document says (pydantic alone would take a number of seconds too).
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)?$")
When = Annotated[str | None, Query(json_schema_extra={"format": "date-time"})]
MAX_LIMIT = 500


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/workflows")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get(
        "",
        responses={
            200: json_reply("WorkflowPage", "Runs, newest first, and the cursor of the next page"),
            **problems(400, 401, 404, 422, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def runs(
        caller: Caller,
        project: Annotated[str | None, Query(description="One project; default: all of yours.", pattern=TOKEN)] = None,
        task: Annotated[str | None, Query(description="Runs of this task.", pattern=TOKEN)] = None,
        state: Annotated[list[WorkflowState], Query(description="Any of these states.")] = [],  # noqa: B006
        template: Annotated[str | None, Query(description="name or name@version.", pattern=REF)] = None,
        label: Annotated[list[Label], Query(description="key=value; every one must match.")] = [],  # noqa: B006
        since: When = None,
        until: When = None,
        cursor: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_\-]{1,512}$")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        search: Annotated[str | None, Query(description="A run's id, or part of its name.", pattern=r"^[^\x00]{1,128}$")] = None,
    ) -> Response:  # fmt: skip
        if project is not None and project not in caller.projects:
            raise Problem(404, f"no project {project}", kind="not-found")
        query = WorkflowListQuery(
            visible=sorted(caller.projects), project=project, task=task, states=state,
            template=template, labels=_labels(label), since=_time(since, "since"),
            until=_time(until, "until"), cursor=cursor,
            limit=limit, search=search,
        )  # fmt: skip
        try:
            return Response(await gw.svc.ask(LIST_WORKFLOWS, query), media_type=JSON)
        except QueryFailed as exc:
            if exc.code == 400:
                raise Problem(400, exc.description, kind="bad-cursor") from exc
            raise upstream(exc, "task-manager") from exc

    return api


def _time(value: str | None, what: str) -> datetime | None:
    """An RFC 3339 time (UTC when it names no offset); a 422 for anything else."""
    if value is None:
        return None
    try:
        if not RFC3339.match(value):
            raise ValueError(value)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(422, f"{what} must be an RFC 3339 time, not {value[:64]!r}",
                      kind="validation") from None  # fmt: skip
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _labels(given: list[str]) -> dict[str, str]:
    labels = {}
    for pair in given:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise Problem(422, f"label {pair!r} must be key=value", kind="validation")
        labels[key] = value
    return labels
