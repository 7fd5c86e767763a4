"""Request/reply payloads between services (nats.micro endpoints), msgspec JSON.

A query that fails answers with the micro error headers ``Nats-Service-Error`` and
``Nats-Service-Error-Code`` (an HTTP-like status), never with a body of a different shape.
"""

from datetime import datetime
from typing import Any

import msgspec

# The states moved to aiop.contracts.states; they are still importable from here.
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES as TERMINAL_WORKFLOW_STATES
from aiop.contracts.states import StepState, WorkflowState


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
