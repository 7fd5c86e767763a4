"""The gateway's answers as ``TypedDict``s: what a type checker knows of each result.

At run time every answer is the plain ``dict`` decoded from its JSON. Each class is named
after its schema in ``GET /openapi.json`` and has the same keys (a test holds them to the
gateway's document). A key that is ``NotRequired`` is left out of the answer when it has
its default; ``str | None`` keys are always there and may be null. Times are ISO 8601
strings.
"""

from typing import Any, Literal, NotRequired, TypedDict, final

WorkflowState = Literal[
    "submitted", "accepted", "queued", "running",
    "succeeded", "failed", "cancelled", "timed_out", "rejected",
]  # fmt: skip
StepState = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cached", "cancelled", "timed_out"
]
# A workflow in one of these has ended and never moves again.
TERMINAL_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "cancelled", "timed_out", "rejected"}
)

# -- tokens and keys ------------------------------------------------------------------


class TokenReply(TypedDict):
    token: str
    expires_at: str
    principal: str
    projects: list[str]


class ApiKeyView(TypedDict):
    key_id: str
    created_at: str
    revoked_at: str | None


class IssuedKey(TypedDict):
    key_id: str
    api_key: str  # shown this once
    created_at: str


# -- workflows ------------------------------------------------------------------------


class Origin(TypedDict):
    kind: str  # "api", "cli", "trigger", "schedule" or "rerun"
    trigger: NotRequired[str]
    event_id: NotRequired[str]
    event_source: NotRequired[str]
    schedule: NotRequired[str]
    tick: NotRequired[str]
    rerun_of: NotRequired[str]


class StepView(TypedDict):
    name: str
    state: StepState
    needs: list[str]
    attempt: int
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    error: str | None
    output_tail: str | None
    tries: int
    runner: str | None
    summary: dict[str, Any]
    entry_key: str | None


class WorkflowView(TypedDict):
    workflow_id: str
    name: str
    project: str
    state: WorkflowState
    steps: list[StepView]
    reason: str | None
    attempt: int
    executor_id: str | None
    trace_id: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    template: str | None
    parameters: dict[str, Any]
    summary: dict[str, dict[str, Any]]
    origin: Origin
    task: str | None
    labels: dict[str, str]
    body_digest: str | None


class WorkflowReport(TypedDict):
    workflow_id: str
    outcome: str
    steps_total: int
    steps_succeeded: int
    steps_failed: int
    steps_skipped: int
    duration_s: float | None
    first_event_at: str | None
    last_event_at: str | None
    executor_id: str | None
    project: str | None


class WorkflowStatus(WorkflowView):
    """``GET /v1/workflows/{id}``: the view, with reporter's summary when it has one."""

    report: WorkflowReport | None


class CancelReply(TypedDict):
    workflow_id: str
    state: str
    detail: str
    status_url: str


class WorkflowListItem(TypedDict):
    workflow_id: str
    name: str
    project: str
    state: WorkflowState
    created_at: str
    origin: Origin
    task: NotRequired[str]
    template: NotRequired[str]
    labels: NotRequired[dict[str, str]]
    started_at: NotRequired[str]
    finished_at: NotRequired[str]
    reason: NotRequired[str]


class WorkflowPage(TypedDict):
    workflows: list[WorkflowListItem]
    next_cursor: NotRequired[str]  # there is a next page


class RunsPruned(TypedDict):
    workflow_ids: list[str]
    workflows_removed: int
    log_entries_removed: int
    dry_run: bool


@final  # so that `"end" in item` tells it from Ended
class LogEntry(TypedDict):
    seq: int  # the id to resume after
    step: str
    stream: str  # "stdout" or "stderr"
    text: str
    attempt: int
    try_number: int
    time: str


class LogPage(TypedDict):
    workflow_id: str
    state: str
    entries: list[LogEntry]


@final
class WorkflowEventEntry(TypedDict):
    seq: int  # the id to resume after
    type: str  # the CloudEvents type: "aiop.step.started.v1", ...
    time: str
    event: dict[str, Any]  # the event as published


class WorkflowEventPage(TypedDict):
    workflow_id: str
    state: str
    events: list[WorkflowEventEntry]


@final
class Ended(TypedDict):
    """The last item of a followed stream: the workflow's final state."""

    end: str


# -- templates, secrets and the step cache ----------------------------------------------


class TemplateInfo(TypedDict):
    name: str
    version: str  # the newest
    versions: list[str]
    description: str
    builtin: bool
    parameters: dict[str, Any]  # a JSON Schema


class TemplateList(TypedDict):
    project: str
    templates: list[TemplateInfo]


class Template(TypedDict):
    name: str
    version: str
    workflow: dict[str, Any]
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    project: NotRequired[str]
    created_at: NotRequired[str]


class SecretView(TypedDict):
    name: str
    project: str
    created_at: str
    updated_at: str


class SecretList(TypedDict):
    project: str
    secrets: list[SecretView]


class CacheEntry(TypedDict):
    key: str
    result: str
    project: str
    step: str
    workflow_id: str
    attempt: int
    created_at: str
    outputs_digest: NotRequired[str]
    outputs_size: NotRequired[int]
    duration_s: NotRequired[float]


class CacheList(TypedDict):
    entries: list[CacheEntry]
    total_outputs_bytes: int


class Pruned(TypedDict):
    removed_entries: int
    removed_outputs: int
    freed_bytes: int


# -- projects and tasks -----------------------------------------------------------------


class ProjectView(TypedDict):
    name: str
    description: str
    created_at: str
    created_by: str
    archived_at: str | None
    tasks: int


class ProjectList(TypedDict):
    projects: list[ProjectView]


class SetRun(TypedDict):
    task: str
    workflow_id: str | None
    error: str | None


class ProjectRun(TypedDict):
    project: str
    set_id: str
    state: str
    runs: list[SetRun]
    counts: NotRequired[dict[str, int]]
    summary: NotRequired[dict[str, Any]]


class TaskView(TypedDict):
    project: str
    name: str
    created_at: str
    updated_at: str
    description: NotRequired[str]
    template: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    workflow: NotRequired[dict[str, Any]]


class TaskDetail(TaskView):
    """``GET /v1/projects/{project}/tasks/{name}``: the task and its latest runs."""

    runs: list[WorkflowListItem]


class TaskList(TypedDict):
    tasks: list[TaskView]


# -- triggers, events and schedules -----------------------------------------------------


class TriggerTarget(TypedDict):
    template: NotRequired[str]
    task: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]


class Trigger(TypedDict):
    name: str
    event_type: str
    target: TriggerTarget
    project: NotRequired[str]
    source: NotRequired[str]
    filter: NotRequired[dict[str, Any]]
    enabled: NotRequired[bool]
    description: NotRequired[str]
    created_by: NotRequired[str]
    created_at: NotRequired[str]
    updated_at: NotRequired[str]


class TriggerList(TypedDict):
    project: str
    triggers: list[Trigger]


class TriggerRun(TypedDict):
    trigger: str
    workflow_id: NotRequired[str]
    reason: NotRequired[str]


class EventRecord(TypedDict):
    project: str
    source: str
    id: str
    type: str
    received_at: str
    subject: NotRequired[str]
    time: NotRequired[str]
    data: NotRequired[Any]
    runs: NotRequired[list[TriggerRun]]


class EventPage(TypedDict):
    project: str
    events: list[EventRecord]
    next_cursor: NotRequired[str]


class EventSent(TypedDict):
    id: str
    source: str
    type: str
    project: str
    subject: str


class TickView(TypedDict):
    tick: str
    fired_at: str
    workflow_id: NotRequired[str]
    state: NotRequired[str]
    error: NotRequired[str]


class ScheduleView(TypedDict):
    project: str
    name: str
    cron: str
    timezone: str
    policy: Literal["catch_up", "skip"]
    catch_up_limit: int
    enabled: bool
    created_at: str
    created_by: str
    template: NotRequired[str]
    task: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    next_at: NotRequired[str]
    ticks: NotRequired[list[TickView]]


class ScheduleList(TypedDict):
    project: str
    schedules: list[ScheduleView]


# -- webhooks ---------------------------------------------------------------------------


class Webhook(TypedDict):
    id: str
    project: str
    url: str
    events: list[str]  # workflow.completed, step.failed, ...
    created_at: str
    updated_at: str
    description: str
    enabled: bool
    disabled_reason: str | None  # why the platform disabled it, if it did
    failures: int  # deliveries failed in a row
    created_by: str | None


class WebhookCreated(Webhook):
    secret: str  # whsec_<base64>: shown this once


class WebhookList(TypedDict):
    project: str
    webhooks: list[Webhook]


class DeliveryAttempt(TypedDict):
    at: str
    duration_s: float
    status: int | None  # the HTTP status it answered
    error: str | None


class WebhookDelivery(TypedDict):
    id: str  # the webhook-id header of each attempt
    webhook_id: str
    event_type: str
    event_id: str
    workflow_id: str
    state: Literal["pending", "delivered", "failed"]
    created_at: str
    updated_at: str
    attempts: list[DeliveryAttempt]
    reason: str | None
    series: int  # 0 the first delivery; each redelivery one more


class DeliveryList(TypedDict):
    webhook_id: str
    deliveries: list[WebhookDelivery]


# -- the operator's view: executors, run statistics, traces ----------------------------


class EngineView(TypedDict):
    reachable: bool | None  # the executor's Dagger engine answers; None: unknown
    detail: str


class ExecutorView(TypedDict):
    id: str
    pool: str
    capabilities: list[str]
    runners: list[str]
    labels: list[str]
    slots: int
    capacity: int
    load: int
    running: int  # workflows it runs
    last_heartbeat: str
    age_s: float
    stale: bool
    circuits: dict[str, str]  # runner -> "closed" | "open" | "half-open"
    engine: EngineView


class ExecutorList(TypedDict):
    executors: list[ExecutorView]


class CacheStats(TypedDict):
    entries: int
    bytes: int
    hits: int
    misses: int
    hit_rate: float | None
    evictions: int
    removed: int
    outputs_gone: int
    window_s: float | None
    executors: int


class StatsBucket(TypedDict):
    at: str
    finished: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


class WorkflowStats(TypedDict):
    counts: dict[str, int]  # state -> runs submitted in the window
    total: int
    series: list[StatsBucket]
    since: str
    until: str
    bucket_s: int


class TraceSpan(TypedDict):
    span_id: str
    parent_id: str | None
    service: str
    name: str
    start_unix_ns: int
    duration_ms: float
    status: str
    attributes: dict[str, Any]


class WorkflowTrace(TypedDict):
    trace_id: str
    spans: list[TraceSpan]
    truncated: bool


# -- dead letters and the live tail -----------------------------------------------------


class DeadLetter(TypedDict):
    seq: int  # its sequence in AIOP_DLQ: the id to replay, the cursor to page with
    recorded_at: str
    stream: str
    consumer: str
    original_subject: str
    stream_seq: int
    reason: str
    deliveries: int
    project: str | None  # None: no project's, the platform's
    workflow_id: str | None
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    headers: dict[str, str]
    replayable: bool
    replayed_at: str | None
    replayed_by: str | None


class DeadLetterPage(TypedDict):
    items: list[DeadLetter]
    next: int | None  # pass as ``before`` for the next page


class Replayed(TypedDict):
    seq: int
    subject: str
    replayed_at: str
    msg_id: str


@final
class TailEvent(TypedDict):
    """One event of the live tail (GET /v1/stream)."""

    stream: str
    seq: int
    subject: str
    type: str  # "aiop.step.started.v1", ...
    time: str
    workflow_id: str | None
    summary: str  # one line, as `aiop tail` prints it
    event: Any  # the event as published


class TailPage(TypedDict):
    events: list[TailEvent]
    last_event_id: str


# -- agents ----------------------------------------------------------------------------


class AgentRegistered(TypedDict):
    agent_id: str
    name: str
    project: str
    capabilities: list[str]
    concurrency: int
    token: str  # the agent's own token: good on its agent routes only
    expires_at: str
    lease_ttl_s: float
    heartbeat_s: float
    poll_wait_s: float


class AgentView(TypedDict):
    agent_id: str
    name: str
    project: str
    principal: str
    capabilities: list[str]
    concurrency: int
    load: int  # leases it holds now
    last_heartbeat: str
    registered_at: str
    stale: bool  # not heard from for longer than a live agent ever is


class Health(TypedDict):
    status: str
