"""Agents: external workers that take the steps asking for a capability they offer.

A step with ``agent: <capability>`` (and a JSON ``with:`` input) is not run by the
executor. The executor offers it as an ``AgentWork`` on
``aiop.agent.work.v1.<project>.<capability>`` (stream AIOP_AGENT_WORK, work-queue
retention), and waits for ``AgentReport`` messages on
``aiop.agent.report.v1.<workflow>.<attempt>.<step>`` (stream AIOP_AGENT_REPORTS).

Agents reach the platform over HTTP only, through the gateway. The gateway holds one
durable consumer per project and capability (``agents-<project>-<capability>``); taking
work is fetching from it, and the JetStream delivery *is* the lease: its ack wait is the
lease's time to live, a heartbeat is an in-progress ack, the result an ack. An agent
that stops heartbeating loses the delivery, JetStream delivers it again, and another
agent takes it under a new lease id; the old lease's reports are refused.

A step the executor gives up on (timed out, cancelled) is withdrawn: an ``AgentReport``
of kind ``withdrawn`` on ``aiop.agent.withdrawn.v1.<workflow>.<attempt>.<step>.<try>``,
which the gateway looks up when the holder heartbeats, and tells it to stop.
"""

from datetime import datetime
from typing import Any, Literal

import msgspec

from aiop.contracts.events import now
from aiop.contracts.subjects import STREAM_AGENT_REPORTS as STREAM_AGENT_REPORTS
from aiop.contracts.subjects import STREAM_AGENT_WORK as STREAM_AGENT_WORK
from aiop.contracts.subjects import check_token

WORK = "aiop.agent.work.v1"
REPORT = "aiop.agent.report.v1"
WITHDRAWN = "aiop.agent.withdrawn.v1"
KV_AGENTS = "aiop_agents"  # gateway: agent id -> AgentRecord
KV_AGENT_LEASES = "aiop_agent_leases"  # gateway: work sequence -> Lease

MAX_OUTPUT_BYTES = 64 * 1024  # an agent's output, as JSON: the same bound as a summary
MAX_CONCURRENCY = 256
MAX_CAPABILITIES = 32  # that one agent offers
AGENT_TOKEN_TTL_S = 15 * 60.0

ReportKind = Literal["progress", "log", "result", "failure", "withdrawn"]


def work_subject(project: str, capability: str) -> str:
    return f"{WORK}.{check_token(project, 'project')}.{check_token(capability, 'capability')}"


def work_filter(project: str, capability: str) -> str:
    return work_subject(project, capability)


def work_durable(project: str, capability: str) -> str:
    """The gateway's durable consumer of one project's work for one capability."""
    return f"agents-{check_token(project, 'project')}-{check_token(capability, 'capability')}"


def report_subject(workflow_id: str, attempt: int, step: str) -> str:
    return (
        f"{REPORT}.{check_token(workflow_id, 'workflow id')}.{attempt}.{check_token(step, 'step')}"
    )


def withdrawn_subject(workflow_id: str, attempt: int, step: str, try_number: int) -> str:
    return (
        f"{WITHDRAWN}.{check_token(workflow_id, 'workflow id')}.{attempt}"
        f".{check_token(step, 'step')}.{try_number}"
    )


def work_id(workflow_id: str, attempt: int, step: str, try_number: int) -> str:
    """One try of one step of one attempt: the work's ``Nats-Msg-Id``."""
    return f"{workflow_id}.{attempt}.{step}.{try_number}"


class AgentWork(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One try of an agent step, offered to the agents of its project and capability."""

    work_id: str
    workflow_id: str
    attempt: int
    step: str
    try_number: int
    project: str
    capability: str
    input: dict[str, Any] = {}  # the step's ``with:``
    needs: dict[str, dict[str, Any]] = {}  # each needed step's JSON output
    timeout_s: float | None = None  # for this try, from when the executor offered it
    principal: str = ""  # who submitted the workflow
    offered_at: datetime = msgspec.field(default_factory=now)


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    stream: Literal["stdout", "stderr"] = "stdout"
    text: str


class AgentReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the holder of a lease said about its work (or that the executor withdrew it).

    ``result`` carries ``output``; ``failure`` carries ``error``; ``progress`` carries
    ``percent``, ``message`` and ``partial``; ``log`` carries ``lines``."""

    kind: ReportKind
    work_id: str
    lease_id: str = ""
    agent_id: str = ""
    percent: float | None = None
    message: str | None = None
    partial: Any = None
    lines: list[LogLine] = []
    output: dict[str, Any] | None = None
    error: str | None = None
    at: datetime = msgspec.field(default_factory=now)


class AgentRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A registered agent (KV ``aiop_agents``)."""

    agent_id: str
    name: str
    project: str
    principal: str  # whose API key registered it
    capabilities: list[str]
    concurrency: int
    registered_at: datetime
    last_heartbeat: datetime


class Lease(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The current holder of one work message (KV ``aiop_agent_leases``, keyed by the
    message's stream sequence). ``lease_id`` is ``<sequence>-<delivery count>``: a
    delivery after the lease expired has another id, so the old holder is refused."""

    lease_id: str
    agent_id: str
    project: str
    capability: str
    work_id: str
    workflow_id: str
    attempt: int
    step: str
    try_number: int
    ack_subject: str  # the delivery's reply subject: in-progress, ack
    leased_at: datetime
    renewed_at: datetime


def lease_id(sequence: int, delivered: int) -> str:
    return f"{sequence}-{delivered}"


def lease_sequence(value: str) -> int | None:
    """The work message's stream sequence a lease id names, or None if it names none."""
    head, _, tail = value.partition("-")
    return int(head) if head.isdigit() and tail.isdigit() else None
