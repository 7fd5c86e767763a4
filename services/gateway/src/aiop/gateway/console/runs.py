"""The run list: filters, counts per state, the last hour's throughput and latency, and
rows that change as the bus says runs change."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from aiop.client import AsyncClient
from aiop.client.errors import ApiError
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.gateway.console import charts
from aiop.gateway.console.live import sse_headers, sse_message
from aiop.gateway.console.web import PREFIX, Console

STATES = ["submitted", "accepted", "queued", "running", "succeeded", "failed", "cancelled",
          "timed_out", "rejected"]  # fmt: skip
WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "all": 0}
FILTERS = ("project", "task", "state", "template", "window", "q")
PAGE = 50
COUNTS_EVERY_S = 2.0  # counts and chart are redrawn at most this often on a busy bus
SETTLE_S = 0.5  # a run drawn is drawn again this much later, its view caught up
LAGGING_ROUNDS = 40  # an ended run is read this many times at most until its view says so
# The events that end a run: aiop.workflow.<one of these>.v1.
ENDING = frozenset({"completed", "failed", "cancelled", "rejected"})


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=PREFIX)

    @ui.get("")
    async def home() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @ui.get("/")
    async def runs(request: Request) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        chosen = chosen_filters(request.query_params)
        try:
            page = await api.list_workflows(**list_query(chosen), limit=PAGE,
                                            cursor=request.query_params.get("cursor"))  # fmt: skip
        except ApiError as exc:
            return console.page(request, "error.html", status=exc.status, error=exc.detail)
        stats: Mapping[str, Any] = {}
        with contextlib.suppress(ApiError):  # the list stands without its counts
            stats = await api.stats(**stats_query(chosen))
        return console.page(
            request, "runs.html", runs=page["workflows"], next_cursor=page.get("next_cursor"),
            chosen=chosen, states=STATES, windows=list(WINDOWS), stats=stats,
            chart=charts.throughput(stats), live_query=request.url.query,
            older=_older(request.query_params, page.get("next_cursor")),
        )  # fmt: skip

    @ui.get("/runs/live")
    async def live(request: Request) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        chosen = chosen_filters(request.query_params)
        return StreamingResponse(
            _changes(console, api, chosen, request), media_type="text/event-stream",
            headers=sse_headers(),
        )  # fmt: skip

    return ui


def _older(params: Mapping[str, str], cursor: str | None) -> str | None:
    if not cursor:
        return None
    return urlencode({**{k: v for k, v in params.items() if k != "cursor" and v}, "cursor": cursor})


def chosen_filters(params: Mapping[str, str]) -> dict[str, str]:
    chosen = {k: params.get(k, "").strip() for k in FILTERS}
    if chosen["window"] not in WINDOWS:
        chosen["window"] = "24h"
    if chosen["state"] not in STATES:
        chosen["state"] = ""
    return chosen


def _since(chosen: Mapping[str, str]) -> str | None:
    seconds = WINDOWS[chosen["window"]]
    if not seconds:
        return None
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def list_query(chosen: Mapping[str, str]) -> dict[str, Any]:
    return {
        "project": chosen["project"] or None, "task": chosen["task"] or None,
        "state": chosen["state"] or None, "template": chosen["template"] or None,
        "search": chosen["q"] or None, "since": _since(chosen),
    }  # fmt: skip


def stats_query(chosen: Mapping[str, str]) -> dict[str, Any]:
    """The chart is always the last hour; the counts follow the filters but the state."""
    query = list_query(chosen)
    query.pop("state")
    query.pop("search")
    query["since"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    query["bucket_s"] = 60
    return {k: v for k, v in query.items() if v is not None}


def matches(run: Mapping[str, Any], chosen: Mapping[str, str]) -> bool:
    """Whether a run that changed belongs in the list as filtered."""
    if chosen["project"] and run.get("project") != chosen["project"]:
        return False
    if chosen["task"] and run.get("task") != chosen["task"]:
        return False
    if chosen["state"] and run.get("state") != chosen["state"]:
        return False
    template = run.get("template") or ""
    if chosen["template"] and not (
        template == chosen["template"] or template.startswith(chosen["template"] + "@")
    ):
        return False
    q = chosen["q"].lower()
    return not q or run.get("workflow_id") == chosen["q"] or q in str(run.get("name", "")).lower()


async def _changes(
    console: Console, api: AsyncClient, chosen: dict[str, str], request: Request
) -> AsyncIterator[bytes]:
    """Each run the bus says changed, as its new row; the counts and chart now and then.

    A row is task-manager's view, which takes an event a moment after the stream has it:
    each run drawn is drawn once more when that moment has passed, and a run whose last
    event ended it until its view says so too."""
    changed: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def listen() -> None:
        async for item in api.follow_stream(["aiop.workflow.>"]):
            if item.get("workflow_id"):
                kind = str(item.get("type", "")).removeprefix("aiop.workflow.")
                ending = kind.split(".")[0] in ENDING
                changed.put_nowait((str(item["workflow_id"]), ending))

    listener = asyncio.create_task(listen())
    yield b"retry: 2000\n\n"
    # The list as it is now, once the listener runs: after a reconnect, the runs that
    # changed while the page was away (on the first connect, the rows it already has).
    with contextlib.suppress(ApiError):
        yield sse_message("".join(await _caught_up(console, api, chosen)))
    counted, stale = time.monotonic(), False  # when the counts were drawn; runs changed since
    owed: dict[str, int] = {}  # runs to draw again once their view caught up: rounds left
    try:
        while not listener.done():
            waits = [15.0, *([SETTLE_S] if owed else [])]
            if stale:
                waits.append(max(0.05, COUNTS_EVERY_S - (time.monotonic() - counted)))
            ids: dict[str, bool] = {}
            try:
                workflow_id, ending = await asyncio.wait_for(changed.get(), timeout=min(waits))
                ids[workflow_id] = ending
                await asyncio.sleep(0.1)  # a run's events come in bursts: draw it once
                while not changed.empty():
                    workflow_id, ending = changed.get_nowait()
                    ids[workflow_id] = ids.get(workflow_id, False) or ending
            except TimeoutError:
                if not stale and not owed:
                    yield b": still here\n\n"
                    continue
                ids = dict.fromkeys(owed, False)
            html = await _rows(console, api, chosen, ids, owed)
            stale = stale or bool(ids)
            if stale and time.monotonic() - counted >= COUNTS_EVERY_S:
                counted, stale = time.monotonic(), False
                with contextlib.suppress(ApiError):
                    stats = await api.stats(**stats_query(chosen))
                    html.append(console.fragment("_counts.html", stats=stats, chosen=chosen,
                                                 states=STATES, chart=charts.throughput(stats)))  # fmt: skip
            if html:
                yield sse_message("".join(html))
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def _caught_up(console: Console, api: AsyncClient, chosen: Mapping[str, str]) -> list[str]:
    """The first page's rows, oldest first (each goes on top, or where it is already),
    and the counts."""
    page = await api.list_workflows(**list_query(chosen), limit=PAGE)
    html = [console.fragment("_run_row.html", run=run) for run in reversed(page["workflows"])]
    stats = await api.stats(**stats_query(chosen))
    html.append(console.fragment("_counts.html", stats=stats, chosen=chosen, states=STATES,
                                 chart=charts.throughput(stats)))  # fmt: skip
    return html


async def _rows(
    console: Console, api: AsyncClient, chosen: Mapping[str, str], ids: Mapping[str, bool],
    owed: dict[str, int],
) -> list[str]:  # fmt: skip
    """The rows of ``ids`` (run id -> whether an event just ended it); ``owed`` is kept:
    a run drawn for new events is owed one more draw, or, when an event ended it and its
    view does not say so yet, draws until it does."""
    html = []
    for workflow_id, ending in ids.items():
        rounds = owed.pop(workflow_id, None)  # None: drawn for new events
        try:
            run = await api.status(workflow_id)
        except ApiError:  # removed meanwhile: nothing to draw
            continue
        if matches(run, chosen):
            html.append(console.fragment("_run_row.html", run=run, live=True))
        if run["state"] in TERMINAL_WORKFLOW_STATES:
            continue
        if rounds is None or ending:
            owed[workflow_id] = LAGGING_ROUNDS if ending else 1
        elif rounds > 1:
            owed[workflow_id] = rounds - 1
    return html
