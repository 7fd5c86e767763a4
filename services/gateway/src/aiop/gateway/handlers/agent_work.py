"""What an agent does with its token (docs/agents.md): ``POST /v1/agents/{agent_id}/work``
takes work (a long poll), and ``POST /v1/agents/{agent_id}/leases/{lease_id}/...``
reports on a lease it holds: ``heartbeat``, ``progress``, ``logs``, then ``result`` or
``failure``. Every one of them takes this agent's token and no other (403)."""

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import msgspec
import nats.errors
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from aiop.contracts.agents import (
    MAX_CONCURRENCY,
    MAX_OUTPUT_BYTES,
    AgentReport,
    Lease,
    ReportKind,
)
from aiop.contracts.events import now
from aiop.gateway.agent_access import AgentCaller, decoded, desk_of, the_agent
from aiop.gateway.agent_desk import AgentDesk, LeaseLost, NotYours
from aiop.gateway.context import Gateway, read_body
from aiop.gateway.domain.agents import (
    LEASE_ID,
    MAX_POLL_WAIT_S,
    Accepted,
    FailureIn,
    LeaseState,
    LogsIn,
    ProgressIn,
    ResultIn,
    WorkPage,
)
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
ON_LEASE = problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 431, 502, 503)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/agents/{agent_id}")
    Agent = Annotated[AgentCaller, Depends(the_agent(gw))]

    @api.post(
        "/work",
        responses={
            200: json_reply("WorkPage", "Leases on work, or none once the wait is over"),
            **problems(401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def take_work(
        request: Request,
        agent: Agent,
        wait: Annotated[float | None, Query(ge=0, le=MAX_POLL_WAIT_S)] = None,
        most: Annotated[int, Query(alias="max", ge=1, le=MAX_CONCURRENCY)] = 1,
    ) -> Response:
        """Wait up to ``wait`` seconds (the gateway's poll wait if not given) for work of
        the agent's capabilities; at most ``max`` leases, and no more than the agent's
        concurrency leaves room for beside the leases it holds."""
        desk = desk_of(gw)
        await desk.agents.touch(agent.record, agent.revision, now())
        wait_s = desk.poll_wait_s if wait is None else wait
        polling = asyncio.create_task(desk.poll(agent.record, agent.capabilities, most, wait_s))
        leaving = asyncio.create_task(_gone(request))
        await asyncio.wait({polling, leaving}, return_when=asyncio.FIRST_COMPLETED)
        for task in (polling, leaving):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaving
        try:
            leases = await polling
        except asyncio.CancelledError:
            leases = []  # the agent went away: what the poll took stays for the next one
        return Response(msgspec.json.encode(WorkPage(leases=leases)), media_type=JSON)

    @api.post(
        "/leases/{lease_id}/heartbeat",
        responses={200: json_reply("LeaseState", "The lease lives on"), **ON_LEASE},
        openapi_extra=BEARER,
    )
    async def heartbeat(agent: Agent, lease_id: str) -> Response:
        """Keep the lease: send one every ``heartbeat_s``; stop working if ``cancelled``."""
        desk = desk_of(gw)
        lease, revision = await _held(desk, agent, lease_id)
        return await _renewed(desk, agent, lease, revision)

    @api.post(
        "/leases/{lease_id}/progress",
        responses={200: json_reply("LeaseState", "Reported; the lease lives on"), **ON_LEASE},
        openapi_extra={**json_body("ProgressIn"), **BEARER},
    )
    async def progress(request: Request, agent: Agent, lease_id: str) -> Response:
        """How far the work is, for the step's watchers; also a heartbeat."""
        given = decoded(await read_body(request, gw.max_body_bytes), ProgressIn, "progress")
        desk = desk_of(gw)
        lease, revision = await _held(desk, agent, lease_id)
        await desk.report(lease, _report(lease, "progress", percent=given.percent,
                                         message=given.message, partial=given.partial))  # fmt: skip
        return await _renewed(desk, agent, lease, revision)

    @api.post(
        "/leases/{lease_id}/logs",
        responses={200: json_reply("LeaseState", "Reported; the lease lives on"), **ON_LEASE},
        openapi_extra={**json_body("LogsIn"), **BEARER},
    )
    async def logs(request: Request, agent: Agent, lease_id: str) -> Response:
        """Lines of output, which become the step's; also a heartbeat."""
        given = decoded(await read_body(request, gw.max_body_bytes), LogsIn, "log lines")
        desk = desk_of(gw)
        lease, revision = await _held(desk, agent, lease_id)
        if given.lines:
            await desk.report(lease, _report(lease, "log", lines=given.lines))
        return await _renewed(desk, agent, lease, revision)

    @api.post(
        "/leases/{lease_id}/result",
        responses={200: json_reply("Accepted", "The step's output, stored"), **ON_LEASE},
        openapi_extra={**json_body("ResultIn"), **BEARER},
    )
    async def result(request: Request, agent: Agent, lease_id: str) -> Response:
        """The work's output, a JSON object of at most 64 KiB; ends the lease. The same
        again on the same lease is answered the same."""
        given = decoded(await read_body(request, gw.max_body_bytes), ResultIn, "a result")
        size = len(msgspec.json.encode(given.output))
        if size > MAX_OUTPUT_BYTES:
            raise Problem(422, f"the output is {size} bytes as JSON, more than"
                          f" {MAX_OUTPUT_BYTES}", kind="output-too-large")  # fmt: skip
        return await _finished(desk_of(gw), agent, lease_id, "result", output=given.output)

    @api.post(
        "/leases/{lease_id}/failure",
        responses={200: json_reply("Accepted", "The failure, stored"), **ON_LEASE},
        openapi_extra={**json_body("FailureIn"), **BEARER},
    )
    async def failure(request: Request, agent: Agent, lease_id: str) -> Response:
        """The work failed (the step's retry policy decides what next); ends the lease."""
        given = decoded(await read_body(request, gw.max_body_bytes), FailureIn, "a failure")
        return await _finished(desk_of(gw), agent, lease_id, "failure", error=given.error)

    return api


async def _held(desk: AgentDesk, agent: AgentCaller, lease_id: str) -> tuple[Lease, int]:
    """The lease, if this agent holds it now: 409 if it is lost, 403 if another's."""
    if not LEASE_ID.match(lease_id):
        raise _lost(lease_id)
    try:
        lease, revision = await desk.lease_of(agent.record.agent_id, lease_id)
    except LeaseLost:
        raise _lost(lease_id) from None
    except NotYours:
        raise Problem(403, f"lease {lease_id} is another agent's", kind="forbidden") from None
    if lease.capability not in agent.capabilities:  # a token renewed with fewer of them
        raise Problem(403, f"the token does not offer {lease.capability}", kind="forbidden")
    return lease, revision


def _lost(lease_id: str) -> Problem:
    return Problem(409, f"lease {lease_id} is lost: its work went to another holder, was"
                   " answered or withdrawn", kind="lease-lost")  # fmt: skip


async def _renewed(desk: AgentDesk, agent: AgentCaller, lease: Lease, revision: int) -> Response:
    cancelled = await desk.renew(lease, revision)
    await desk.agents.touch(agent.record, agent.revision, now())
    state = LeaseState(cancelled=cancelled, lease_ttl_s=desk.lease_ttl_s)
    return Response(msgspec.json.encode(state), media_type=JSON)


async def _finished(
    desk: AgentDesk,
    agent: AgentCaller,
    lease_id: str,
    kind: Literal["result", "failure"],
    **fields: Any,
) -> Response:
    agent_id = agent.record.agent_id
    try:
        lease, revision = await _held(desk, agent, lease_id)
    except Problem as refused:
        # The same answer again, after it ended the lease: answered as the first time.
        if refused.status == 409 and await desk.answered(agent_id, lease_id, kind):
            return _accepted()
        raise
    try:
        await desk.finish(lease, revision, _report(lease, kind, **fields))
    except (TimeoutError, nats.errors.NoRespondersError) as exc:
        raise Problem(503, f"the {kind} is kept, but the work could not be acked: send it"
                      " again", kind="unavailable") from exc  # fmt: skip
    return _accepted()


def _report(lease: Lease, kind: ReportKind, **fields: Any) -> AgentReport:
    return AgentReport(kind=kind, work_id=lease.work_id, lease_id=lease.lease_id,
                       agent_id=lease.agent_id, **fields)  # fmt: skip


def _accepted() -> Response:
    return Response(msgspec.json.encode(Accepted(accepted=True)), media_type=JSON)


async def _gone(request: Request) -> None:
    """Return when the client has gone away (this route reads no body)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
