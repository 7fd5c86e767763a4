"""Request/reply payloads between services (nats.micro endpoints), msgspec JSON.

A query that fails answers with the micro error headers ``Nats-Service-Error`` and
``Nats-Service-Error-Code`` (an HTTP-like status), never with a body of a different shape.
"""

from datetime import datetime
from typing import Any

import msgspec

# The states moved to aiop.contracts.states; they are still importable from here.
from aiop.contracts.events import Origin
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES as TERMINAL_WORKFLOW_STATES
from aiop.contracts.states import StepState, WorkflowState
from aiop.contracts.workflow import WorkflowSpec


class WorkflowQuery(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: str


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: StepState
    needs: list[str] = []
    attempt: int = 0
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    output_tail: str | None = None
    tries: int = 0  # tries started in this attempt; more than 1 when it was retried
    runner: str | None = None  # which runner ran it: "local" or "dagger"
    summary: dict[str, Any] = {}  # what it reported ($AIOP_SUMMARY)
    entry_key: str | None = None  # the step store entry holding its result


class CancelReply(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's answer to ``POST /v1/workflows/{id}/cancel``."""

    workflow_id: str
    state: str  # the workflow's state when the cancel was asked
    detail: str
    status_url: str


class WorkflowView(msgspec.Struct, frozen=True, kw_only=True):
    """task-manager's answer to ``aiop.query.workflow.get.v1``."""

    workflow_id: str
    name: str
    project: str
    state: WorkflowState
    steps: list[StepView]
    reason: str | None = None  # why queued, rejected or failed
    attempt: int = 0
    executor_id: str | None = None
    trace_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    template: str | None = None  # "name@version", when it was rendered from a template
    parameters: dict[str, Any] = {}  # the template's parameters, defaults filled in
    summary: dict[str, dict[str, Any]] = {}  # step -> what it reported
    origin: Origin = Origin(kind="api")  # what started it
    task: str | None = None  # the project's task it is a run of
    labels: dict[str, str] = {}
    body_digest: str | None = None  # of the submission that carried an Idempotency-Key


class RunSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a run was asked to do (``aiop.query.workflow.source.v1``): enough to run it
    again."""

    workflow_id: str
    project: str
    spec: WorkflowSpec
    template: str | None = None
    parameters: dict[str, Any] = {}
    task: str | None = None


class RerunRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/workflows/{id}/rerun``."""

    from_step: str | None = msgspec.field(default=None, name="from")  # default: what failed
    parameters: dict[str, Any] = {}  # changed template parameters; the rest stay


class WorkflowListQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Which runs to list (``aiop.query.workflow.list.v1``), newest first. Only runs in
    ``visible`` projects are listed: the caller's, as its token says."""

    visible: list[str]
    project: str | None = None
    task: str | None = None
    states: list[WorkflowState] = []
    template: str | None = None  # "name" (any version) or "name@version"
    labels: dict[str, str] = {}  # every one must match
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    cursor: str | None = None  # from the previous page's next_cursor
    limit: int = 50
    search: str | None = None  # a run's id, or part of its name (any case)


class WorkflowListItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    workflow_id: str
    name: str
    project: str
    state: WorkflowState
    created_at: datetime
    origin: Origin
    task: str | None = None
    template: str | None = None
    labels: dict[str, str] = {}
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None


class WorkflowPage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    workflows: list[WorkflowListItem]
    next_cursor: str | None = None  # None: this is the last page


class WorkflowReport(msgspec.Struct, frozen=True, kw_only=True):
    """reporter's summary of one workflow, folded from its events."""

    workflow_id: str
    outcome: str  # the latest known state: "accepted", "running", "succeeded", "failed", ...
    steps_total: int = 0
    steps_succeeded: int = 0
    steps_failed: int = 0
    steps_skipped: int = 0
    duration_s: float | None = None
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    executor_id: str | None = None
    project: str | None = None  # None in reports folded before the field existed


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Exchange an API key for a short-lived JWT (``aiop.auth.token.v1``)."""

    api_key: str
    # Limit the token to these of the principal's projects; None: all of them.
    projects: list[str] | None = None


class TokenReply(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_at: datetime
    principal: str
    projects: list[str]


class AuthorizeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """May ``principal`` do ``action`` in ``project``? (``aiop.auth.authorize.v1``)"""

    principal: str
    project: str
    action: str  # e.g. "workflow:submit", "workflow:read"


class AuthorizeReply(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    reason: str = ""


class StepTokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A token for a step that calls the API (``aiop.auth.token.step.v1``): the
    submitter's identity, limited to the workflow's project, for ``ttl_s``."""

    principal: str
    project: str
    workflow_id: str
    ttl_s: float


class AgentTokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A token for an agent (``aiop.auth.token.agent.v1``): ``principal``'s, who
    registered it, limited to ``project``, naming ``agent_id`` and the capabilities it may
    take work for (contracts.agents), for ``ttl_s`` (at most AGENT_TOKEN_TTL_S)."""

    principal: str
    project: str
    agent_id: str
    capabilities: list[str]
    ttl_s: float


class PruneRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Remove the ended runs of ``projects`` that finished before ``before``
    (``aiop.query.workflow.prune.v1``)."""

    projects: list[str]
    before: datetime
    dry_run: bool = False


class Pruned(msgspec.Struct, frozen=True, kw_only=True):
    workflow_ids: list[str]  # the runs removed (or, dry, that would be)


class RunsPruned(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``DELETE /v1/workflows``: the runs removed, and their log entries."""

    workflow_ids: list[str]
    workflows_removed: int
    log_entries_removed: int
    dry_run: bool = False


class ProjectGrant(msgspec.Struct, frozen=True, kw_only=True):
    """Let ``principal`` into ``project`` (``aiop.auth.projects.grant.v1``): the gateway
    asks it for whoever created the project."""

    principal: str
    project: str


class PrincipalProjects(msgspec.Struct, frozen=True, kw_only=True):
    principal: str
    projects: list[str]


class KeysRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The API keys of ``principal``: list them, or issue one more."""

    principal: str


class KeyRevocation(msgspec.Struct, frozen=True, kw_only=True):
    principal: str
    key_id: str


class ApiKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as anyone may see it: never the key, nor its hash."""

    key_id: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyList(msgspec.Struct, frozen=True, kw_only=True):
    keys: list[ApiKeyView]


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key: shown this once, stored only as a hash."""

    key_id: str
    api_key: str
    created_at: datetime
