"""Every event on the AIOP bus, version 1.

Rules (docs/architecture.md, "Events"): within ``v1`` only optional fields may be added; a breaking
change is a new struct with ``v2`` in its ``TYPE``, published beside this one. Decoders
ignore unknown fields, so an old consumer reads a newer producer's events.

Each event names its CloudEvents type in ``TYPE`` (which is also its subject stem) and
builds its full subject, routing tokens included, in ``subject()``.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import msgspec

from aiop.contracts.subjects import check_token
from aiop.contracts.workflow import WorkflowSpec


def new_id() -> str:
    return uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Fields every event carries. ``event_id`` is also the ``Nats-Msg-Id`` it is published with."""

    TYPE: ClassVar[str] = ""
    # The subject tokens after TYPE, in order, named by the fields that fill them.
    ROUTING: ClassVar[tuple[str, ...]] = ()
    event_id: str = msgspec.field(default_factory=new_id)
    occurred_at: datetime = msgspec.field(default_factory=now)

    def subject(self) -> str:
        return self.TYPE

    @classmethod
    def filter(cls, **tokens: str) -> str:
        """The subject filter for this event type, its leading routing tokens fixed by
        ``tokens`` (``WorkflowRequested.filter(pool="gpu")``), the rest matched by ``>``."""
        fixed = []
        for name in cls.ROUTING[: len(tokens)]:
            if name not in tokens:
                break
            fixed.append(check_token(tokens[name], name.replace("_", " ")))
        if len(fixed) != len(tokens):
            raise ValueError(f"{cls.__name__} routes by {cls.ROUTING}, not {sorted(tokens)}")
        wild = [">"] if len(fixed) < len(cls.ROUTING) else []
        return ".".join([cls.TYPE, *fixed, *wild])


class WorkflowEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    """An event about one workflow; its id is the subject's last token."""

    ROUTING: ClassVar[tuple[str, ...]] = ("workflow_id",)
    workflow_id: str

    def subject(self) -> str:
        return f"{self.TYPE}.{check_token(self.workflow_id, 'workflow id')}"


ORIGIN_KINDS = ("api", "cli", "mcp", "trigger", "schedule", "rerun")


class Origin(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What started a run: a client over the API, the CLI or MCP, a trigger on an external
    event, a schedule's tick, or a rerun of an earlier run."""

    kind: str  # one of ORIGIN_KINDS
    trigger: str | None = None  # trigger: its name
    event_id: str | None = None  # trigger: the CloudEvent's id
    event_source: str | None = None  # trigger: the CloudEvent's source
    schedule: str | None = None  # schedule: its name
    tick: datetime | None = None  # schedule: the time it was due
    rerun_of: str | None = None  # rerun: the workflow it reruns


class WorkflowSubmitted(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A workflow was asked for: by a client through the gateway, or by a trigger or a
    schedule in task-manager."""

    TYPE: ClassVar[str] = "aiop.workflow.submitted.v1"
    spec: WorkflowSpec
    principal: str
    template: str | None = None  # "name@version" when rendered from a template
    parameters: dict[str, Any] = {}  # the template's parameters, defaults filled in
    origin: Origin | None = None  # None: an API client (as before the field existed)
    task: str | None = None  # the project's task it is a run of
    # The Idempotency-Key's body digest: the same key with another body is refused.
    body_digest: str | None = None


class WorkflowAccepted(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """task-manager stored a valid workflow and will see it through."""

    TYPE: ClassVar[str] = "aiop.workflow.accepted.v1"
    spec: WorkflowSpec
    principal: str | None = None  # who submitted it: steps that call the API act as them


class WorkflowRejected(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """task-manager refused a submitted workflow; ``reasons`` says why."""

    TYPE: ClassVar[str] = "aiop.workflow.rejected.v1"
    reasons: list[str]


class WorkflowQueued(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The distributor holds the workflow back; ``reason`` says what it waits for."""

    TYPE: ClassVar[str] = "aiop.workflow.queued.v1"
    reason: str
    attempt: int = 1


class WorkflowRequested(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The distributor sent the workflow to an executor pool. ``attempt`` grows on each resend."""

    TYPE: ClassVar[str] = "aiop.workflow.requested.v1"
    ROUTING: ClassVar[tuple[str, ...]] = ("pool", "workflow_id")
    spec: WorkflowSpec
    pool: str
    attempt: int = 1
    principal: str | None = None  # who submitted it: steps that call the API act as them

    def subject(self) -> str:
        pool = check_token(self.pool, "pool")
        return f"{self.TYPE}.{pool}.{check_token(self.workflow_id, 'workflow id')}"


class WorkflowStarted(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """An executor claimed the workflow's attempt and began running it."""

    TYPE: ClassVar[str] = "aiop.workflow.started.v1"
    executor_id: str
    attempt: int = 1
    runner: str = "local"


class WorkflowCompleted(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """Every step succeeded."""

    TYPE: ClassVar[str] = "aiop.workflow.completed.v1"
    executor_id: str
    attempt: int = 1
    duration_s: float = 0.0


class WorkflowFailed(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A step failed (or the run could not proceed); ``reason`` says what happened."""

    TYPE: ClassVar[str] = "aiop.workflow.failed.v1"
    executor_id: str
    reason: str
    attempt: int = 1
    failed_step: str | None = None
    duration_s: float = 0.0


class WorkflowCancelled(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A cancel request stopped the workflow: its executor stopped the running steps and
    started no more, or the distributor cancelled it before any executor took it
    (``executor_id`` None)."""

    TYPE: ClassVar[str] = "aiop.workflow.cancelled.v1"
    executor_id: str | None = None
    reason: str
    cancelled_by: str  # the principal who asked
    attempt: int = 1
    duration_s: float = 0.0  # of the run, when one had started


class StepEvent(WorkflowEvent, frozen=True, kw_only=True, omit_defaults=True):
    step: str
    attempt: int = 1


class StepStarted(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "aiop.step.started.v1"


class StepCompleted(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "aiop.step.completed.v1"
    exit_code: int = 0
    started_at: datetime | None = None
    duration_s: float = 0.0  # from the first try's start, retries and their waits included
    tries: int = 1  # how many tries it took
    runner: str | None = None  # which runner ran it: "local", "dagger" or "agent"
    agent_id: str | None = None  # runner "agent": the agent whose result it is
    cache_key: str | None = None  # what its result is stored under (None: not cacheable)
    outputs_digest: str | None = None  # sha256 of its outputs archive, if it has outputs
    outputs_size: int = 0
    summary: dict[str, Any] = {}  # what the step wrote to $AIOP_SUMMARY (a JSON object)
    entry_key: str | None = None  # the step store entry holding its result, for reruns


class StepFailed(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A step ended badly. ``exit_code`` is None when it never ran to an exit (timeout, spawn error)."""

    TYPE: ClassVar[str] = "aiop.step.failed.v1"
    exit_code: int | None
    error: str
    output_tail: str = ""  # last lines of stdout+stderr of the last try, secrets scrubbed
    started_at: datetime | None = None
    duration_s: float = 0.0  # from the first try's start, retries and their waits included
    tries: int = 1  # how many tries it had; every one failed
    timed_out: bool = False  # the last try ran past the step's timeout and was killed
    runner: str | None = None  # which runner ran its last try; None: it never started


class StepRetrying(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A try of a step failed and, per its retry policy, it runs again in ``delay_s``."""

    TYPE: ClassVar[str] = "aiop.step.retrying.v1"
    try_number: int  # the try that failed, counted from 1
    exit_code: int | None
    error: str
    delay_s: float
    timed_out: bool = False
    output_tail: str = ""  # the failed try's last lines, secrets scrubbed


class StepCached(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The step did not run: an earlier run with the same cache key (``source`` "cache"),
    an earlier attempt of this workflow (``source`` "resumed"), or the run this one
    reruns (``source`` "rerun") gave its result, and its outputs were restored."""

    TYPE: ClassVar[str] = "aiop.step.cached.v1"
    cache_key: str
    source: str = "cache"  # "cache" | "resumed" | "rerun"
    from_workflow_id: str
    from_attempt: int = 1
    outputs_digest: str | None = None
    outputs_size: int = 0
    duration_s: float = 0.0  # looking it up and restoring its outputs
    summary: dict[str, Any] = {}  # the summary of the run it was taken from
    entry_key: str | None = None  # the step store entry it was taken from


class StepProgress(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """How far the agent holding a step says it got: a percent, a message, and any
    partial result so far. Informational: it changes no state."""

    TYPE: ClassVar[str] = "aiop.step.progress.v1"
    try_number: int = 1
    agent_id: str | None = None
    percent: float | None = None  # 0 to 100
    message: str | None = None
    partial: Any = None  # a partial result, as JSON


class StepSkipped(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A step did not run because a step it needs did not succeed."""

    TYPE: ClassVar[str] = "aiop.step.skipped.v1"
    reason: str


class StepOutputAppended(StepEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A chunk of a step's output, in stream AIOP_LOGS (short retention)."""

    TYPE: ClassVar[str] = "aiop.output.appended.v1"
    stream: str  # "stdout" | "stderr"
    seq: int
    text: str
    try_number: int = 1  # which try of the step wrote it


class ExecutorHeartbeat(Event, frozen=True, kw_only=True, omit_defaults=True):
    """An executor's liveness and capacity, on core NATS every few seconds."""

    TYPE: ClassVar[str] = "aiop.executor.heartbeat.v1"
    ROUTING: ClassVar[tuple[str, ...]] = ("pool", "executor_id")
    executor_id: str
    pool: str
    capabilities: list[str]  # what workflows may require: runner kinds and labels
    slots: int  # workflows it can take now
    running: list[str] = []  # the workflows it runs
    interval_s: float = 2.0
    capacity: int = 0  # steps it runs at most at once, over all its workflows
    load: int = 0  # steps it runs now
    runners: list[str] = []  # the runner kinds it can use now: "local", "dagger"
    labels: list[str] = []  # what its operator says it offers, e.g. "gpu"
    # Its Dagger engine as it knows it: True answered (circuit closed), False failed or
    # missing, None unknown (a local-only executor, or a probe under way); and why.
    engine_reachable: bool | None = None
    engine_detail: str = ""
    circuits: dict[str, str] = {}  # runner -> its breaker's "closed" | "open" | "half_open"
    # The step cache as this executor used it since ``started_at``: lookups by cache key
    # that gave a step its result (hits) or did not (misses), and entries found whose
    # outputs the object store had already dropped (its size limit or TTL).
    started_at: datetime | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    cache_outputs_gone: int = 0

    def subject(self) -> str:
        pool = check_token(self.pool, "pool")
        return f"{self.TYPE}.{pool}.{check_token(self.executor_id, 'executor id')}"

    def is_live(self, age_s: float) -> bool:
        """Whether an executor last heard from ``age_s`` ago counts as alive: one lost or
        slow heartbeat must not make it stale, so it gets MISSED_BEATS of its intervals."""
        return age_s <= MISSED_BEATS * self.interval_s


# An executor is live until this many of its own heartbeat intervals pass in silence.
MISSED_BEATS = 3.0


class DeadLetterRecorded(Event, frozen=True, kw_only=True, omit_defaults=True):
    """A message that could not be processed, kept whole with the reason (stream AIOP_DLQ)."""

    TYPE: ClassVar[str] = "aiop.dlq.recorded.v1"
    ROUTING: ClassVar[tuple[str, ...]] = ("stream", "consumer")
    stream: str
    consumer: str
    original_subject: str
    stream_seq: int
    reason: str
    deliveries: int
    payload: bytes
    headers: dict[str, str] = {}

    def subject(self) -> str:
        return f"{self.TYPE}.{check_token(self.stream, 'stream')}.{check_token(self.consumer, 'consumer')}"


class ExecutorCircuitChanged(Event, frozen=True, kw_only=True, omit_defaults=True):
    """An executor's circuit breaker in front of its Dagger engine changed state.

    ``open``: the engine failed ``failures`` times in a row; steps run with the local
    runner (a workflow that requires ``dagger`` is not run locally) and the heartbeat
    stops offering ``dagger``. ``half_open``: the cooldown is over and one probe checks
    the engine. ``closed``: the probe succeeded; steps run with Dagger again.
    """

    TYPE: ClassVar[str] = "aiop.executor.circuit.v1"
    ROUTING: ClassVar[tuple[str, ...]] = ("pool", "executor_id")
    executor_id: str
    pool: str
    state: str  # "closed" | "open" | "half_open"
    reason: str
    runner: str = "dagger"  # the runner its steps get from now on: "dagger" | "local"
    failures: int = 0  # consecutive engine failures behind an open circuit
    probe_in_s: float | None = None  # open: seconds until the engine is probed

    def subject(self) -> str:
        pool = check_token(self.pool, "pool")
        return f"{self.TYPE}.{pool}.{check_token(self.executor_id, 'executor id')}"


def dead_letter_id(stream: str, consumer: str, seq: int) -> str:
    """One dead-letter record per message and consumer: the consumer that refused it and
    the advisory about that refusal collapse into one (same Nats-Msg-Id), while two
    consumers refusing the same message are both recorded."""
    return f"dlq-{stream}-{seq}-{consumer}"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        WorkflowSubmitted,
        WorkflowAccepted,
        WorkflowRejected,
        WorkflowQueued,
        WorkflowRequested,
        WorkflowStarted,
        WorkflowCompleted,
        WorkflowFailed,
        WorkflowCancelled,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepRetrying,
        StepCached,
        StepSkipped,
        StepProgress,
        StepOutputAppended,
        ExecutorHeartbeat,
        DeadLetterRecorded,
        ExecutorCircuitChanged,
    )
}
