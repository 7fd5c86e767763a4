"""The fleet: each executor and agent, its capabilities, capacity, load, heartbeat,
runners and circuits; each executor's Dagger engine; and the step cache's numbers.

Nothing on the bus says an executor's load changed (heartbeats are every 2 s and are not
events), so the live part is drawn again every REDRAW_S while the page is open."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from aiop.client import AsyncClient
from aiop.client.errors import ApiError
from aiop.gateway.console.live import sse_headers, sse_message
from aiop.gateway.console.web import PREFIX, Console

REDRAW_S = 2.0  # an executor's heartbeat interval: drawing faster shows nothing new


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=f"{PREFIX}/fleet")
    console.env.filters.update(percent=percent, size=size, engine_state=engine_state)

    @ui.get("")
    async def fleet(request: Request) -> Response:
        session = await console.session(request)
        view = await fleet_view(console.api(session=session))
        return console.page(request, "fleet.html", **view)

    @ui.get("/live")
    async def live(request: Request) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        return StreamingResponse(_redraws(console, api, request), media_type="text/event-stream",
                                 headers=sse_headers())  # fmt: skip

    return ui


async def fleet_view(api: AsyncClient) -> dict[str, Any]:
    """What the fleet fragment is drawn from; a part the API refuses is None, with why."""
    view: dict[str, Any] = {}
    for key, fetch in (("executors", api.executors), ("agents", api.agents),
                       ("cache", api.cache_stats)):  # fmt: skip
        try:
            view[key] = await fetch()
            view[f"{key}_error"] = None
        except ApiError as exc:
            view[key] = None
            view[f"{key}_error"] = exc.detail or f"the API answered {exc.status}"
    return view


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


def size(n: int | None) -> str:
    """Bytes as a person reads them."""
    if n is None:
        return ""
    amount = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{n} B"


def engine_state(engine: Mapping[str, Any] | None) -> str:
    """An executor's Dagger engine as a badge: up, down or unknown."""
    reachable = (engine or {}).get("reachable")
    return "unknown" if reachable is None else "up" if reachable else "down"


async def _redraws(console: Console, api: AsyncClient, request: Request) -> AsyncIterator[bytes]:
    """The fleet fragment every REDRAW_S, when it changed; a comment when it did not, so
    a proxy keeps the connection. Ends when the browser goes (Starlette cancels it)."""
    yield b"retry: 2000\n\n"
    last = ""
    while not await request.is_disconnected():
        await asyncio.sleep(REDRAW_S)
        html = console.fragment("_fleet.html", **await fleet_view(api))
        if html == last:
            yield b": still here\n\n"
            continue
        last = html
        yield sse_message(html)
