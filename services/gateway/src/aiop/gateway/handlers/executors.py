"""GET /v1/executors: the executor fleet, from the heartbeats every gateway replica hears
(domain/fleet.py)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends
from starlette.responses import Response

from aiop.contracts.events import ExecutorCircuitChanged, ExecutorHeartbeat
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.servicekit import Service

JSON = "application/json"


def follow_fleet(svc: Service, gw: Gateway) -> None:
    """Keep ``gw.fleet`` current. Core NATS, no queue group: every replica keeps the whole
    table, and a heartbeat missed is made up by the next one."""

    async def heard(beat: ExecutorHeartbeat) -> None:
        gw.fleet.observe(beat)

    async def changed(event: ExecutorCircuitChanged) -> None:
        gw.fleet.circuit_changed(event)

    svc.listen(ExecutorHeartbeat, heard)
    svc.listen(ExecutorCircuitChanged, changed)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/executors")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.get("", responses={200: json_reply("ExecutorList", "Every executor heard from lately"),
                            **problems(401, 403, 429, 431)}, openapi_extra=BEARER)  # fmt: skip
    async def executors(caller: Caller) -> Response:
        """Every executor heard from in the last few minutes, by pool and id: what it
        offers, its capacity and load, when it was last heard (``stale`` once it missed
        its heartbeats), its circuit breakers and its Dagger engine as it knows them.
        Any signed-in user may look: it names no project, and counts workflows only."""
        return Response(msgspec.json.encode(gw.fleet.executors()), media_type=JSON)

    return api
