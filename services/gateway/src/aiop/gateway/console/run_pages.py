"""One run: its graph, steps, logs, inputs and outputs, origin and trace, kept live, with
cancel and rerun-from-a-step."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from aiop.client import AsyncClient
from aiop.client.errors import ApiError
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.gateway.console import graph, waterfall
from aiop.gateway.console.live import sse_headers, sse_message
from aiop.gateway.console.web import PREFIX, Console

UNFINISHED = ("failed", "timed_out", "cancelled")  # where a rerun starts by default
REDRAW_S = 0.15  # a run's events come in bursts: one redraw per burst
SETTLE_S = 0.5  # then once more, when task-manager's view has taken them


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=f"{PREFIX}/runs/{{workflow_id}}")

    @ui.get("")
    async def run_page(request: Request, workflow_id: str, step: str | None = None) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        try:
            run = await api.status(workflow_id)
        except ApiError as exc:
            return console.page(request, "error.html", status=exc.status, error=exc.detail)
        spec = await _spec(api, workflow_id)
        spans: Mapping[str, Any] = {}
        with contextlib.suppress(ApiError):  # no trace stored here: the page says so
            spans = await api.trace(workflow_id)
        names = [s["name"] for s in run["steps"]]
        chosen = step if step in names else _first_interesting(run)
        return console.page(
            request, "run.html", **_run_context(run), chosen_step=chosen,
            spec=json.dumps(spec, indent=2) if spec else "", inputs=_inputs(run),
            trace=waterfall.layout(spans.get("spans", [])), trace_id=run.get("trace_id"),
            notice=request.query_params.get("notice"),
        )  # fmt: skip

    @ui.get("/live")
    async def live(request: Request, workflow_id: str) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        return StreamingResponse(_redraws(console, api, workflow_id, session.csrf), headers=sse_headers(),
                                 media_type="text/event-stream")  # fmt: skip

    @ui.get("/logs/live")
    async def logs(request: Request, workflow_id: str, step: str | None = None) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        return StreamingResponse(_log_lines(console, api, workflow_id, step),
                                 headers=sse_headers(), media_type="text/event-stream")  # fmt: skip

    @ui.post("/cancel")
    async def cancel(request: Request, workflow_id: str) -> Response:
        session = await console.changing(request)
        try:
            reply = await console.api(session=session).cancel(workflow_id)
            notice = reply["detail"]
        except ApiError as exc:
            notice = f"cancel refused: {exc.detail}"
        return _back(workflow_id, notice)

    @ui.post("/rerun")
    async def rerun(
        request: Request, workflow_id: str, from_step: Annotated[str, Form()] = ""
    ) -> Response:
        session = await console.changing(request)
        try:
            new_id = await console.api(session=session).rerun(workflow_id, from_step or None)
        except ApiError as exc:
            return _back(workflow_id, f"rerun refused: {exc.detail}")
        return _back(
            new_id, f"rerun of {workflow_id}" + (f" from {from_step}" if from_step else "")
        )

    return ui


def _run_context(run: Mapping[str, Any]) -> dict[str, Any]:
    """What the parts of the page that change with the run are drawn from."""
    return {
        "run": run, "graph": graph.layout(run["steps"]), "outputs": run.get("summary") or {},
        "origin": origin_text(run), "ended": run["state"] in TERMINAL_WORKFLOW_STATES,
        "rerun_from": next((s["name"] for s in run["steps"] if s["state"] in UNFINISHED), ""),
    }  # fmt: skip


def _back(workflow_id: str, notice: str) -> Response:
    return RedirectResponse(f"{PREFIX}/runs/{workflow_id}?notice={quote(notice)}", status_code=303)


def _first_interesting(run: Mapping[str, Any]) -> str | None:
    """The step whose log the page opens on: the failed one, else the running one, else
    the last."""
    steps = run["steps"]
    for state in ("failed", "timed_out", "running"):
        for s in steps:
            if s["state"] == state:
                return str(s["name"])
    return str(steps[-1]["name"]) if steps else None


async def _spec(api: AsyncClient, workflow_id: str) -> dict[str, Any] | None:
    """What the run was submitted as: its first event holds the spec."""
    with contextlib.suppress(ApiError):
        page = await api.workflow_events(workflow_id)
        for entry in page.get("events", []):
            event = entry.get("event", entry)
            if isinstance(event, dict) and "spec" in event:
                return dict(event["spec"])
    return None


def _inputs(run: Mapping[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if run.get("template"):
        inputs["template"] = run["template"]
    inputs.update({f"parameter {k}": v for k, v in (run.get("parameters") or {}).items()})
    inputs.update({f"label {k}": v for k, v in (run.get("labels") or {}).items()})
    return inputs


def origin_text(run: Mapping[str, Any]) -> str:
    origin = run.get("origin") or {"kind": "api"}
    kind = origin.get("kind", "api")
    if kind == "trigger":
        return (f"trigger {origin.get('trigger')} on event {origin.get('event_id')}"
                f" from {origin.get('event_source')}")  # fmt: skip
    if kind == "schedule":
        return f"schedule {origin.get('schedule')}, tick {str(origin.get('tick', ''))[:19]}"
    if kind == "rerun":
        return f"rerun of {origin.get('rerun_of')}"
    return {"api": "the HTTP API", "cli": "the aiop CLI", "mcp": "an MCP client"}.get(
        kind, str(kind)
    )


async def _redraws(
    console: Console, api: AsyncClient, workflow_id: str, csrf: str
) -> AsyncIterator[bytes]:
    """The run's header, graph and steps, redrawn after each burst of its events.

    The view is task-manager's, which takes an event a moment after the stream has it:
    each burst's redraw is followed by one more once things settled, and after the run's
    last event the view is read until it too says the run ended."""
    changed = asyncio.Event()
    ended = asyncio.Event()

    async def listen() -> None:
        try:
            async for item in api.follow_events(workflow_id):
                changed.set()
                if "end" in item:
                    break
        finally:
            ended.set()
            changed.set()

    listener = asyncio.create_task(listen())
    yield b"retry: 2000\n\n"
    settling = False  # a redraw is owed once the view has caught up
    try:
        while True:
            try:
                await asyncio.wait_for(changed.wait(), timeout=SETTLE_S if settling else 15.0)
                await asyncio.sleep(REDRAW_S)
                settling = True
            except TimeoutError:
                if not settling:
                    yield b": still here\n\n"
                    continue
                settling = False
            changed.clear()
            try:
                run = await api.status(workflow_id)
            except ApiError:
                break
            yield sse_message(console.fragment("_run_live.html", **_run_context(run), csrf=csrf))
            if run["state"] in TERMINAL_WORKFLOW_STATES and ended.is_set():
                yield sse_message("", event="end")
                break
            if ended.is_set():
                settling = True  # its events are all in; its view is still catching up
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def _log_lines(
    console: Console, api: AsyncClient, workflow_id: str, step: str | None
) -> AsyncIterator[bytes]:
    """The step's output as it is stored, then a last line once the run ended."""
    yield b"retry: 2000\n\n"
    try:
        async for entry in api.follow_logs(workflow_id, step):
            if "end" in entry:
                yield sse_message(console.fragment("_log_lines.html", end=entry["end"]))
                yield sse_message("", event="end")
                return
            yield sse_message(console.fragment("_log_lines.html", entries=[entry]))
    except ApiError as exc:
        yield sse_message(console.fragment("_log_lines.html", error=exc.detail))
        yield sse_message("", event="end")
