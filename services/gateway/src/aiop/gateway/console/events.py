"""The event stream, live, with ``aiop tail``'s subject patterns; the dead letters with
their reasons; and a dead letter's message replayed, as it was or fixed."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from aiop.client import AsyncClient
from aiop.client.errors import ApiError
from aiop.client.types import DeadLetter
from aiop.gateway.console.live import sse_headers, sse_message
from aiop.gateway.console.web import PREFIX, Console

EVENTS = f"{PREFIX}/events"
DEAD_LETTERS = f"{EVENTS}/dead-letters"
DEFAULT_SUBJECTS = "aiop.workflow.> aiop.step.> aiop.executor.circuit.> aiop.dlq.>"
PAGE = 50  # dead letters a page
RECENT = 5  # dead letters on the events page
KEEPALIVE_S = 15.0


def tail_query(params: Mapping[str, str]) -> dict[str, str]:
    """The tail's filters as the form sent them: patterns (space-separated, as typed),
    a workflow id and a since; the default patterns when none are given."""
    return {
        "subjects": " ".join(params.get("subjects", "").split()) or DEFAULT_SUBJECTS,
        "workflow": params.get("workflow", "").strip(),
        "since": params.get("since", "").strip(),
    }


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=EVENTS)

    @ui.get("")
    async def events(request: Request) -> Response:
        session = await console.session(request)
        chosen = tail_query(request.query_params)
        recent: list[DeadLetter] = []
        error = None
        try:
            recent = (await console.api(session=session).dead_letters(limit=RECENT))["items"]
        except ApiError as exc:
            error = exc.detail or f"the API answered {exc.status}"
        return console.page(request, "events.html", chosen=chosen, recent=recent, error=error,
                            live_query=urlencode(chosen))  # fmt: skip

    @ui.get("/live")
    async def live(request: Request) -> Response:
        session = await console.session(request)
        chosen = tail_query(request.query_params)
        return StreamingResponse(_tail(console, console.api(session=session), chosen),
                                 media_type="text/event-stream", headers=sse_headers())  # fmt: skip

    @ui.get("/dead-letters")
    async def dead_letters(request: Request) -> Response:
        session = await console.session(request)
        before = _int(request.query_params.get("before"))
        try:
            page = await console.api(session=session).dead_letters(limit=PAGE, before=before)
        except ApiError as exc:
            return console.page(request, "error.html", status=exc.status, error=exc.detail)
        return console.page(request, "dead_letters.html", items=page["items"], next=page["next"],
                            notice=request.query_params.get("notice"))  # fmt: skip

    @ui.get("/dead-letters/{seq}")
    async def dead_letter(request: Request, seq: int) -> Response:
        session = await console.session(request)
        try:
            item = await find_dead_letter(console.api(session=session), seq)
        except ApiError as exc:
            return console.page(request, "error.html", status=exc.status, error=exc.detail)
        if item is None:
            return console.page(request, "error.html", status=404, error=f"no dead letter {seq}")
        return console.page(request, "dead_letter.html", item=item,
                            notice=request.query_params.get("notice"))  # fmt: skip

    @ui.post("/dead-letters/{seq}/replay")
    async def replay(
        request: Request,
        seq: int,
        payload: Annotated[str, Form()] = "",
        force: Annotated[str, Form()] = "",
    ) -> Response:
        api = console.api(session=await console.changing(request))
        try:
            item = await find_dead_letter(api, seq)
            if item is None:  # its page would be a 404: the notice goes on the list
                return RedirectResponse(f"{DEAD_LETTERS}?notice={quote(f'no dead letter {seq}')}",
                                        status_code=303)  # fmt: skip
            fixed = replay_payload(item, payload)
            done = await api.replay_dead_letter(seq, fixed, force=bool(force))
        except ApiError as exc:
            return _back(seq, f"replay refused: {exc.detail or exc.status}")
        how = "as it was" if fixed is None else "fixed"
        return _back(seq, f"dead letter {seq} replayed {how} to {done['subject']}")

    return ui


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _back(seq: int, notice: str) -> Response:
    return RedirectResponse(f"{DEAD_LETTERS}/{seq}?notice={quote(notice)}", status_code=303)


async def find_dead_letter(api: AsyncClient, seq: int) -> DeadLetter | None:
    """One record, read as the list reads it: the first at or below ``seq``, if it is
    that one (the caller may not see it)."""
    page = await api.dead_letters(limit=1, before=seq + 1)
    return next((item for item in page["items"] if item["seq"] == seq), None)


def replay_payload(item: Mapping[str, Any], sent: str) -> str | None:
    """What to replay: None (the message as it was) when the form's text is the shown
    one; else the text, with the browser's CRLF line ends as the message had them."""
    text = sent.replace("\r\n", "\n")
    return None if text == item["payload"] else text


async def _tail(
    console: Console, api: AsyncClient, chosen: Mapping[str, str]
) -> AsyncIterator[bytes]:
    """Each event as a list item on top of the tail, a comment when it is quiet."""
    items: asyncio.Queue[Any] = asyncio.Queue()

    async def listen() -> None:
        try:
            async for item in api.follow_stream(chosen["subjects"].split(),
                                                workflow=chosen["workflow"] or None,
                                                since=chosen["since"] or None):  # fmt: skip
                items.put_nowait(item)
        except ApiError as exc:
            items.put_nowait(exc)
        finally:
            items.put_nowait(None)

    listener = asyncio.create_task(listen())
    yield b"retry: 2000\n\n"
    try:
        while True:
            try:
                item = await asyncio.wait_for(items.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield b": still here\n\n"
                continue
            batch = [item]
            while not items.empty():  # a burst is drawn in one message
                batch.append(items.get_nowait())
            html, ended = [], False
            for one in batch:
                if one is None:
                    ended = True
                elif isinstance(one, ApiError):
                    html.append(console.fragment("_tail_item.html", error=one.detail))
                else:
                    html.append(console.fragment("_tail_item.html", item=one))
            if html:
                yield sse_message("".join(html))
            if ended:
                yield sse_message("", event="end")
                return
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
