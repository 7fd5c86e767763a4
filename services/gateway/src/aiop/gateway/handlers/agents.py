"""Agents, as their owners see them: ``POST /v1/agents`` registers one (with a user's
token) and gives it an agent token; ``GET /v1/agents[/{agent_id}]`` shows the agents of
the caller's projects; ``DELETE /v1/agents/{agent_id}`` removes one (its own token, or a
user's of its project); ``POST /v1/agents/{agent_id}/token`` renews an agent's token.
What agents do with their token is in ``agent_work``."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiop.contracts.agents import AGENT_TOKEN_TTL_S, AgentRecord
from aiop.contracts.events import now
from aiop.gateway.access import allow, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.agent_access import (
    AgentCaller,
    agent_record,
    agent_token,
    decoded,
    desk_of,
    the_agent,
)
from aiop.gateway.context import Gateway, authenticated, read_body
from aiop.gateway.domain.agents import (
    AgentIn,
    AgentList,
    AgentRegistered,
    AgentToken,
    heartbeat_every,
    new_agent_id,
    stale_after,
    unique,
    view,
)
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/agents")
    User = Annotated[Claims, Depends(authenticated(gw))]
    UserOrAgent = Annotated[Claims, Depends(authenticated(gw, agents=True))]
    Agent = Annotated[AgentCaller, Depends(the_agent(gw))]

    @api.post(
        "", status_code=201,
        responses={
            201: json_reply("AgentRegistered", "Registered: its id, its token, its times"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 502, 503),
        },
        openapi_extra={**json_body("AgentIn"), **BEARER},
    )  # fmt: skip
    async def register_agent(request: Request, caller: User) -> Response:
        """Register an agent of the caller's in a project; its token (an agent token,
        good on this agent's routes only) is in the answer."""
        given = decoded(await read_body(request, gw.max_body_bytes), AgentIn, "an agent")
        project = await project_for(gw, caller, given.project, "agent:register")
        desk = desk_of(gw)
        agent_id, capabilities = new_agent_id(), unique(given.capabilities)
        token = await agent_token(gw, caller.sub, project, agent_id, capabilities,
                                  AGENT_TOKEN_TTL_S)  # fmt: skip
        at = now()
        record = AgentRecord(
            agent_id=agent_id, name=given.name, project=project, principal=caller.sub,
            capabilities=capabilities, concurrency=given.concurrency, registered_at=at,
            last_heartbeat=at,
        )  # fmt: skip
        await desk.agents.add(record)
        registered = AgentRegistered(
            agent_id=agent_id, name=record.name, project=project, capabilities=capabilities,
            concurrency=record.concurrency, token=token.token, expires_at=token.expires_at,
            lease_ttl_s=desk.lease_ttl_s, heartbeat_s=heartbeat_every(desk.lease_ttl_s),
            poll_wait_s=desk.poll_wait_s,
        )  # fmt: skip
        return Response(msgspec.json.encode(registered), 201, media_type=JSON)

    @api.get(
        "",
        responses={
            200: json_reply("AgentList", "The agents of the caller's projects, by name"),
            **problems(400, 401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_agents(caller: User, project: str | None = None) -> Response:
        """The agents of ``project``, or of every project of the caller's."""
        if project is not None:
            projects = {await project_for(gw, caller, project, "agent:read")}
        else:
            projects = {p for p in caller.projects if await _may_read(gw, caller, p)}
        desk = desk_of(gw)
        stale, loads = stale_after(desk.lease_ttl_s, desk.poll_wait_s), await desk.loads()
        at = now()
        agents = sorted(
            (r for r in await desk.agents.all() if r.project in projects),
            key=lambda r: (r.name, r.agent_id),
        )
        found = AgentList(agents=[view(r, loads[r.agent_id], at, stale) for r in agents])
        return Response(msgspec.json.encode(found), media_type=JSON)

    @api.get(
        "/{agent_id}",
        responses={
            200: json_reply("AgentView", "The agent"),
            **problems(401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def show_agent(agent_id: str, caller: User) -> Response:
        record = await agent_record(gw, caller, agent_id)
        await allow(gw, caller.sub, record.project, "agent:read")
        desk = desk_of(gw)
        stale = stale_after(desk.lease_ttl_s, desk.poll_wait_s)
        shown = view(record, (await desk.loads())[agent_id], now(), stale)
        return Response(msgspec.json.encode(shown), media_type=JSON)

    @api.delete(
        "/{agent_id}", status_code=204,
        responses={
            204: {"description": "Removed: its token is good for nothing more"},
            **problems(401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )  # fmt: skip
    async def remove_agent(agent_id: str, caller: UserOrAgent) -> Response:
        """Remove an agent: with its own token (an agent leaving), or a user's of its
        project. Leases it still holds expire and their work is offered again."""
        record = await agent_record(gw, caller, agent_id)
        if caller.agent is None:
            await allow(gw, caller.sub, record.project, "agent:delete")
        await desk_of(gw).agents.remove(agent_id)
        return Response(status_code=204)

    @api.post(
        "/{agent_id}/token",
        responses={
            200: json_reply("AgentToken", "A new token for the agent"),
            **problems(401, 403, 404, 429, 431, 502, 503),
        },
        openapi_extra=BEARER,
    )
    async def renew_token(agent: Agent) -> Response:
        """A new token for the agent, with its token still valid; auth checks its
        principal still has the project."""
        record = agent.record
        token = await agent_token(gw, agent.claims.sub, record.project, record.agent_id,
                                  list(record.capabilities), AGENT_TOKEN_TTL_S)  # fmt: skip
        await desk_of(gw).agents.touch(agent.record, agent.revision, now())
        body = AgentToken(token=token.token, expires_at=token.expires_at)
        return Response(msgspec.json.encode(body), media_type=JSON)

    return api


async def _may_read(gw: Gateway, caller: Claims, project: str) -> bool:
    try:
        await allow(gw, caller.sub, project, "agent:read")
    except Problem as refused:
        if refused.status == 403:
            return False
        raise
    return True
