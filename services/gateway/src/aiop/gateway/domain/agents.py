"""Agents over HTTP (docs/agents.md): the bodies of the agent routes, and the rules of
time they follow. The bus side of agents is in ``aiop.contracts.agents``."""

import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec

from aiop.contracts.agents import (
    MAX_CAPABILITIES,
    MAX_CONCURRENCY,
    AgentRecord,
    AgentWork,
    Lease,
    LogLine,
)
from aiop.contracts.secrets import DEFAULT_PROJECT

TOKEN = r"^[A-Za-z0-9_\-]{1,128}$"  # a name that becomes a subject token
AGENT_ID = re.compile(r"^ag-[0-9a-f]{16}$")
LEASE_ID = re.compile(r"^[0-9]+-[0-9]+$")
MAX_ERROR_CHARS = 16 * 1024
MAX_POLL_WAIT_S = 30.0

Name = Annotated[str, msgspec.Meta(pattern=TOKEN)]


def new_agent_id() -> str:
    return f"ag-{secrets.token_hex(8)}"


# -- bodies -----------------------------------------------------------------------------


class AgentIn(msgspec.Struct, frozen=True, kw_only=True):
    """An agent as it registers (``POST /v1/agents``)."""

    name: Name
    project: Name = DEFAULT_PROJECT
    capabilities: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=MAX_CAPABILITIES)]
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=MAX_CONCURRENCY)] = 1


class AgentRegistered(msgspec.Struct, frozen=True, kw_only=True):
    """The registered agent, its token, and the times it keeps to."""

    agent_id: str
    name: str
    project: str
    capabilities: list[str]
    concurrency: int
    token: str  # an agent token: good on the agent routes of this agent only
    expires_at: datetime  # renew before (POST /v1/agents/{agent_id}/token)
    lease_ttl_s: float  # a lease not heartbeated for this long is lost
    heartbeat_s: float  # heartbeat each lease this often
    poll_wait_s: float  # how long a poll waits for work by default


class AgentToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_at: datetime


class AgentView(msgspec.Struct, frozen=True, kw_only=True):
    """A registered agent as its project sees it."""

    agent_id: str
    name: str
    project: str
    principal: str  # whose token registered it
    capabilities: list[str]
    concurrency: int
    load: int  # the leases it holds now
    last_heartbeat: datetime
    registered_at: datetime
    stale: bool  # not heard from for longer than a live agent ever is


class AgentList(msgspec.Struct, frozen=True, kw_only=True):
    agents: list[AgentView]


class WorkLease(msgspec.Struct, frozen=True, kw_only=True):
    """One try of one step, leased to the agent that polled."""

    lease_id: str
    work_id: str
    workflow_id: str
    attempt: int
    step: str
    try_number: int
    capability: str
    input: dict[str, Any]  # the step's with:
    needs: dict[str, dict[str, Any]]  # each needed step's JSON output
    timeout_s: float | None  # for this try, from when it was offered
    lease_ttl_s: float


class WorkPage(msgspec.Struct, frozen=True, kw_only=True):
    leases: list[WorkLease]


class LeaseState(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a heartbeat, progress or log report: stop when ``cancelled``."""

    cancelled: bool
    lease_ttl_s: float


class ProgressIn(msgspec.Struct, frozen=True, kw_only=True):
    percent: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    message: str | None = None
    partial: Any = None


class LogsIn(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[LogLine]


class ResultIn(msgspec.Struct, frozen=True, kw_only=True):
    output: dict[str, Any]  # at most MAX_OUTPUT_BYTES as JSON


class FailureIn(msgspec.Struct, frozen=True, kw_only=True):
    error: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ERROR_CHARS)]


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    accepted: bool


# -- rules ------------------------------------------------------------------------------


def heartbeat_every(lease_ttl_s: float) -> float:
    """Three heartbeats per lease: one lost request does not lose the lease."""
    return lease_ttl_s / 3


def stale_after(lease_ttl_s: float, poll_wait_s: float) -> timedelta:
    """How long a live agent may go unheard: polls that each wait in vain, and a lease's
    life on top (an agent busy with all it may take polls no more)."""
    return timedelta(seconds=3 * poll_wait_s + lease_ttl_s)


def view(record: AgentRecord, load: int, now: datetime, stale: timedelta) -> AgentView:
    return AgentView(
        agent_id=record.agent_id, name=record.name, project=record.project,
        principal=record.principal, capabilities=list(record.capabilities),
        concurrency=record.concurrency, load=load, last_heartbeat=record.last_heartbeat,
        registered_at=record.registered_at, stale=now - record.last_heartbeat > stale,
    )  # fmt: skip


def offer(lease: Lease, work: AgentWork, lease_ttl_s: float) -> WorkLease:
    return WorkLease(
        lease_id=lease.lease_id, work_id=work.work_id, workflow_id=work.workflow_id,
        attempt=work.attempt, step=work.step, try_number=work.try_number,
        capability=work.capability, input=dict(work.input), needs=dict(work.needs),
        timeout_s=work.timeout_s, lease_ttl_s=lease_ttl_s,
    )  # fmt: skip


def renewal_due(lease: Lease, now: datetime, lease_ttl_s: float) -> bool:
    """Whether a heartbeat should also rewrite the lease record's ``renewed_at``: a few
    times per lease's life, not at every heartbeat (JetStream keeps the lease itself)."""
    return now - lease.renewed_at >= timedelta(seconds=lease_ttl_s / 4)


def lease_is_live(lease: Lease, now: datetime, lease_ttl_s: float) -> bool:
    """Whether JetStream still counts the delivery as its holder's, as far as the record
    says: renewed within a lease's life, and the quarter its record may lag. A lease let
    go stays in the record until some agent polls and takes the work again."""
    return now - lease.renewed_at <= timedelta(seconds=lease_ttl_s * 1.25)


def unique(names: list[str]) -> list[str]:
    """``names`` without repeats, in their order."""
    return list(dict.fromkeys(names))


def schemas() -> dict[str, Any]:
    """The agent routes' bodies, as OpenAPI components."""
    _, found = msgspec.json.schema_components(
        [AgentIn, AgentRegistered, AgentToken, AgentList, WorkPage, LeaseState, ProgressIn,
         LogsIn, ResultIn, FailureIn, Accepted],
        ref_template="#/components/schemas/{name}",
    )  # fmt: skip
    return dict(found)
