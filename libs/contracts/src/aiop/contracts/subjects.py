"""Subject grammar: ``aiop.<aggregate>.<event>.v<major>[.<routing tokens>]``.

Routing tokens (workflow id, executor pool, executor id) may come from user input, so
each one is checked: a ``.``, ``*``, ``>`` or whitespace would change what a subscriber
matches (docs/delivery.md, "Subject tokens").
"""

import re

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")

# Streams and what they hold. Subjects of different streams never overlap.
STREAM_EVENTS = "AIOP"
STREAM_LOGS = "AIOP_LOGS"
STREAM_EXT = "AIOP_EXT"
STREAM_DLQ = "AIOP_DLQ"
STREAM_AGENT_WORK = "AIOP_AGENT_WORK"  # steps offered to agents (contracts.agents)
STREAM_AGENT_REPORTS = "AIOP_AGENT_REPORTS"  # what agents said of them
STREAM_WEBHOOKS = "AIOP_WEBHOOKS"  # deliveries to webhooks (contracts.webhooks)

STREAM_SUBJECTS: dict[str, list[str]] = {
    # An executor's circuit changes are rare and worth keeping; its heartbeats are not
    # stored (HEARTBEAT_ALL below).
    STREAM_EVENTS: ["aiop.workflow.>", "aiop.step.>", "aiop.executor.circuit.>"],
    STREAM_LOGS: ["aiop.output.>"],
    STREAM_EXT: ["ext.>"],
    STREAM_DLQ: ["aiop.dlq.>"],
    STREAM_AGENT_WORK: ["aiop.agent.work.>"],
    STREAM_AGENT_REPORTS: ["aiop.agent.report.>", "aiop.agent.withdrawn.>"],
    STREAM_WEBHOOKS: ["aiop.webhook.>"],
}


# Work queues: a message read from one is gone for the service it was meant for, so
# operators (``aiop tail``) never read them; their offers are seen in their reports.
WORK_QUEUES = frozenset({STREAM_AGENT_WORK, STREAM_WEBHOOKS})


def stream_for(subject: str) -> str | None:
    """The stream that stores ``subject``, or None for a core NATS subject."""
    for stream, patterns in STREAM_SUBJECTS.items():
        if any(subject.startswith(pattern.removesuffix(">")) for pattern in patterns):
            return stream
    return None


# Request/reply endpoints (nats.micro services); not persisted.
QUERY_WORKFLOW = "aiop.query.workflow.get.v1"
QUERY_REPORT = "aiop.query.report.get.v1"
AUTH_JWKS = "aiop.auth.jwks.v1"
AUTH_TOKEN = "aiop.auth.token.v1"
AUTH_AUTHORIZE = "aiop.auth.authorize.v1"

# JetStream KV buckets and their owners.
KV_DISPATCH = "aiop_dispatch"  # distributor: workflow id -> dispatch state
KV_CLAIMS = (
    "aiop_claims"  # executors write "<workflow>.a<attempt>" -> executor id; distributor watches
)
KV_REPORTS = "aiop_reports"  # reporter: workflow id -> WorkflowReport
KV_CANCELS = "aiop_cancels"  # gateway: workflow id -> CancelRequest; executors, distributor watch
KV_TEMPLATES = "aiop_templates"  # gateway: "<project>.<name>.<version>" -> Template
KV_SECRETS = "aiop_secrets"  # gateway seals "<project>.<name>" -> StoredSecret; executors open
KV_WEBHOOKS = "aiop_webhooks"  # reporter: "<project>.<webhook id>" -> a webhook and its secret
KV_WEBHOOK_DELIVERIES = "aiop_webhook_deliveries"  # reporter: "<webhook id>.<delivery id>"
KV_DLQ_REPLAYS = "aiop_dlq_replays"  # gateway: AIOP_DLQ seq -> when it was replayed, by whom
KV_CONSOLE_SESSIONS = "aiop_console_sessions"  # gateway: the console's signed-in sessions

# Executors announce themselves on core NATS: liveness is worthless once stale, so
# heartbeats are never stored.
HEARTBEAT_ALL = "aiop.executor.heartbeat.v1.>"


class InvalidToken(ValueError):
    """A value that cannot be used as a subject token."""


def check_token(value: str, what: str = "token") -> str:
    """Return ``value`` if it is safe as one subject token, else raise InvalidToken."""
    if not _TOKEN.match(value):
        raise InvalidToken(
            f"{what} {value!r} must be 1-128 characters of letters, digits, '-' or '_'"
        )
    return value


def workflow_id_of(subject: str) -> str | None:
    """The workflow id routing token of a workflow, step or output subject, if any."""
    parts = subject.split(".")
    if len(parts) >= 5 and parts[0] == "aiop" and parts[1] in ("workflow", "step", "output"):
        return parts[-1]
    return None
