"""Who may use the agent routes: an agent's token on its own agent's routes only, and
the bodies they take. Every other route refuses an agent's token
(``context.authenticated``)."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import msgspec
from fastapi import Depends

from aiop.contracts.agents import AgentRecord
from aiop.contracts.endpoints import AGENT_TOKEN
from aiop.contracts.queries import AgentTokenRequest, TokenReply
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.agent_desk import AgentDesk
from aiop.gateway.context import Gateway, authenticated, upstream
from aiop.gateway.domain.agents import AGENT_ID
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

T = TypeVar("T")
_WHERE = re.compile(r"at `\$([^`]*)`")  # msgspec's "... - at `$.lines[0].text`"
_token = msgspec.json.Decoder(TokenReply)


@dataclass(frozen=True)
class AgentCaller:
    """An agent calling on its own routes: its token's claims, and its record as read."""

    claims: Claims
    record: AgentRecord
    revision: int

    @property
    def capabilities(self) -> list[str]:
        """What it may take work for: in its token, and registered."""
        return [c for c in self.claims.capabilities or [] if c in self.record.capabilities]


def desk_of(gw: Gateway) -> AgentDesk:
    if gw.agents is None:
        raise Problem(503, "agents are not served yet", kind="unavailable")
    return gw.agents


def agent_not_found(agent_id: str) -> Problem:
    return Problem(404, f"no agent {agent_id}", kind="not-found")


def the_agent(gw: Gateway) -> Callable[..., Awaitable[AgentCaller]]:
    """A dependency: the agent named by the path, called with its own token; 403 for
    any other token (a user's, another agent's), 404 once it is deregistered."""

    async def caller(
        agent_id: str, claims: Annotated[Claims, Depends(authenticated(gw, agents=True))]
    ) -> AgentCaller:
        if claims.agent is None:
            raise Problem(403, "this route takes an agent's token (POST /v1/agents gives one)",
                          kind="forbidden")  # fmt: skip
        if claims.agent != agent_id:
            raise Problem(403, f"the token is agent {claims.agent}'s, not {agent_id}'s",
                          kind="forbidden")  # fmt: skip
        found = await desk_of(gw).agents.get(agent_id)
        if found is None:
            raise agent_not_found(agent_id)
        record, revision = found
        if record.project not in claims.projects:  # never so, but the token decides
            raise Problem(403, f"the token is not for project {record.project}", kind="forbidden")
        return AgentCaller(claims, record, revision)

    return caller


async def agent_record(gw: Gateway, caller: Claims, agent_id: str) -> AgentRecord:
    """The agent, if the caller (a user, or the agent itself) may see it; 404 if not."""
    if caller.agent is not None and caller.agent != agent_id:
        raise Problem(403, f"the token is agent {caller.agent}'s, not {agent_id}'s",
                      kind="forbidden")  # fmt: skip
    found = await desk_of(gw).agents.get(agent_id) if AGENT_ID.match(agent_id) else None
    if found is None or found[0].project not in caller.projects:
        raise agent_not_found(agent_id)
    return found[0]


async def agent_token(
    gw: Gateway, principal: str, project: str, agent_id: str, capabilities: list[str], ttl_s: float
) -> TokenReply:
    """An agent token from auth, which checks the principal still has the project."""
    ask = AgentTokenRequest(principal=principal, project=project, agent_id=agent_id,
                            capabilities=capabilities, ttl_s=ttl_s)  # fmt: skip
    try:
        return _token.decode(await gw.svc.ask(AGENT_TOKEN, ask))
    except QueryFailed as exc:
        if exc.code == 403:
            raise Problem(403, exc.description, kind="forbidden") from exc
        raise upstream(exc, "auth") from exc


def decoded(body: bytes, kind: type[T], what: str) -> T:
    """``body`` as a ``kind``: 400 if it is no JSON, 422 (with where) if it is no ``what``.
    Not strict: JSON Schema's integer is any whole number, ``10.0`` too."""
    try:
        return msgspec.json.decode(body, type=kind, strict=False)
    except msgspec.ValidationError as exc:
        found = _WHERE.search(str(exc))
        path = re.sub(r"\[(\d+)\]", r".\1", found.group(1)) if found else ""
        pointer = "/" + path.strip(".").replace(".", "/") if path else ""
        raise Problem(422, f"not {what}: {exc}", kind="validation",
                      errors=[{"pointer": pointer, "detail": str(exc)}]) from None  # fmt: skip
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None
