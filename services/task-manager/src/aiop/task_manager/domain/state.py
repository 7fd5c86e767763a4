"""The workflow and step state machine (architecture.md, "Workflow states").

Events arrive duplicated, and a redelivered one after events that followed it. Each state
therefore has a position ``(attempt, rank)`` and an event only applies when it moves its
workflow or step *forward*; anything else is a duplicate or arrived late, and is ignored.
The first terminal workflow event wins, from any attempt, and closes out the steps it
leaves unfinished (see ``_close_out``).
"""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import msgspec

from aiop.contracts.events import (
    Event,
    StepCached,
    StepCompleted,
    StepEvent,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowQueued,
    WorkflowRequested,
    WorkflowStarted,
    WorkflowSubmitted,
)
from aiop.contracts.states import (
    FINAL_STEP_STATES,
    STEP_RANK,
    TERMINAL_WORKFLOW_STATES,
    WORKFLOW_RANK,
)
from aiop.contracts.workflow import validate_spec


@dataclass(frozen=True)
class Step:
    name: str
    needs: tuple[str, ...] = ()
    state: str = "pending"
    attempt: int = 0
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    output_tail: str | None = None
    # Its state was set when the workflow ended, not by an event of its own: the step's
    # real end, if it still arrives, replaces it.
    closed_by_workflow: bool = False
    tries: int = 0  # tries started in this attempt (retries: StepRetrying)
    runner: str | None = None  # which runner ran it ("local", "dagger")
    summary: str | None = None  # what it reported ($AIOP_SUMMARY), as JSON text
    entry_key: str | None = None  # the step store entry holding its result (reruns take it)

    @property
    def position(self) -> tuple[int, int, int]:
        # A running step moves forward with each retry; an ended one does not: its
        # first end wins, however many tries it names.
        return (self.attempt, STEP_RANK[self.state], self.tries if self.state == "running" else 0)


@dataclass(frozen=True)
class Workflow:
    id: str
    state: str
    attempt: int = 0
    reason: str | None = None
    pool: str | None = None  # set once the distributor sent this attempt to a pool
    executor_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[Step, ...] = ()

    @property
    def position(self) -> tuple[int, int]:
        if self.state == "queued" and self.pool is not None:
            return (self.attempt, WORKFLOW_RANK["requested"])
        return (self.attempt, WORKFLOW_RANK[self.state])

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass(frozen=True)
class Applied:
    workflow: Workflow


@dataclass(frozen=True)
class Ignored:
    """A duplicate, a late event or one of an older attempt: acked, no effect."""

    reason: str


@dataclass(frozen=True)
class Illegal:
    """An event that can never apply to this workflow: logged, acked, no effect."""

    reason: str


Outcome = Applied | Ignored | Illegal


def new_workflow(event: WorkflowSubmitted) -> tuple[Workflow, list[str]]:
    """The workflow a submission creates: accepted, or rejected with every problem found."""
    problems = validate_spec(event.spec)
    if problems:
        return Workflow(event.workflow_id, "rejected", reason="; ".join(problems)), problems
    steps = tuple(Step(s.name, tuple(s.needs)) for s in event.spec.steps)
    return Workflow(event.workflow_id, "accepted", steps=steps), []


def fold(wf: Workflow, event: Event) -> Outcome:
    """What ``event`` does to ``wf``."""
    if wf.state == "rejected":
        return Illegal(f"workflow {wf.id} was rejected; {event.TYPE} cannot apply to it")
    match event:
        case WorkflowQueued():
            return _advance(wf, event.attempt, "queued", state="queued", reason=event.reason)
        case WorkflowRequested():
            reason = f"sent to executor pool {event.pool}, waiting for an executor to start it"
            return _advance(
                wf, event.attempt, "requested", state="queued", reason=reason, pool=event.pool
            )
        case WorkflowStarted():
            return _advance(
                wf, event.attempt, "running", state="running", reason=None,
                executor_id=event.executor_id, started_at=event.occurred_at,
            )  # fmt: skip
        case WorkflowCompleted():
            return _finish(wf, event, "succeeded", None)
        case WorkflowFailed():
            return _finish(wf, event, "failed", event.reason)
        case WorkflowCancelled():
            return _finish(wf, event, "cancelled", event.reason)
        case StepEvent():
            return _fold_step(wf, event)
    return Illegal(f"task-manager does not fold {event.TYPE}")


def _new_attempt(wf: Workflow, attempt: int) -> Workflow:
    """``wf`` moved to a later attempt: what the old attempt left unfinished starts over."""
    steps = tuple(
        Step(s.name, s.needs, attempt=attempt)
        if s.attempt < attempt and s.state in ("pending", "running")
        else s
        for s in wf.steps
    )
    return replace(wf, attempt=attempt, pool=None, executor_id=None, started_at=None, steps=steps)


def _advance(wf: Workflow, attempt: int, stage: str, **changes: object) -> Outcome:
    if wf.state in TERMINAL_WORKFLOW_STATES:
        return Ignored(f"workflow {wf.id} already {wf.state}")
    if attempt < wf.attempt:
        return Ignored(f"attempt {attempt} is older than the current attempt {wf.attempt}")
    if (attempt, WORKFLOW_RANK[stage]) <= wf.position:
        return Ignored(f"duplicate or late: workflow {wf.id} is already {wf.state}")
    base = _new_attempt(wf, attempt) if attempt > wf.attempt else wf
    return Applied(replace(base, **changes))  # type: ignore[arg-type]


Ending = WorkflowCompleted | WorkflowFailed | WorkflowCancelled
StepEnd = StepCompleted | StepFailed | StepCached | StepSkipped


def _finish(wf: Workflow, event: Ending, state: str, reason: str | None) -> Outcome:
    # Any attempt may finish the workflow (a slow executor of an older attempt may
    # still deliver its result); only the first result counts.
    if wf.state in TERMINAL_WORKFLOW_STATES:
        return Ignored(f"workflow {wf.id} already {wf.state}; the first result wins")
    base = _new_attempt(wf, event.attempt) if event.attempt > wf.attempt else wf
    done = replace(
        base, state=state, attempt=event.attempt, reason=reason,
        executor_id=event.executor_id or base.executor_id, finished_at=event.occurred_at,
        steps=tuple(_close_out(_as_of(s, event), event) for s in base.steps),
    )  # fmt: skip
    return Applied(done)


def _as_of(step: Step, event: Ending) -> Step:
    """``step`` as the attempt that finished the workflow left it, to be closed out.

    When an older attempt (a slow executor, not a lost one) wins, what a newer attempt
    did to the step does not count; and a completion says every step succeeded, so a
    step that reads otherwise (an older attempt's failure or skip, the winner's own end
    of it ignored while a newer attempt was current) does not count either. Such a step
    starts over in the winning attempt; its real end there, if it still arrives, refines
    what closing out writes."""
    taken_back = step.attempt > event.attempt or (
        isinstance(event, WorkflowCompleted)
        and step.state in FINAL_STEP_STATES
        and step.state not in ("succeeded", "cached")
    )
    return Step(step.name, step.needs, attempt=event.attempt) if taken_back else step


def _close_out(step: Step, event: Ending) -> Step:
    """``step`` as the end of its workflow leaves it. An executor that fails outside any
    step (or is cancelled) sends no more step events, so a step still pending or running
    would read so forever; it is closed now, and marked so that its real end still wins."""
    if step.state in FINAL_STEP_STATES:
        return step
    closed = replace(
        step, attempt=event.attempt, finished_at=event.occurred_at, closed_by_workflow=True
    )
    if isinstance(event, WorkflowCompleted):
        return replace(closed, state="succeeded")  # completed: every step succeeded
    if isinstance(event, WorkflowCancelled):
        if step.state == "pending":
            return replace(closed, state="skipped", error=f"never started: {event.reason}")
        return replace(closed, state="cancelled", error=f"stopped: {event.reason}")
    if step.state == "pending":
        return replace(
            closed, state="skipped",
            error=f"closed because the workflow failed before this step started: {event.reason}",
        )  # fmt: skip
    return replace(
        closed, state="cancelled",
        error=f"closed because the workflow failed while this step ran: {event.reason}",
    )  # fmt: skip


def _fold_step(wf: Workflow, event: StepEvent) -> Outcome:
    step = wf.step(event.step)
    if step is None:
        return Illegal(f"workflow {wf.id} has no step {event.step!r}")
    if wf.state in TERMINAL_WORKFLOW_STATES and event.attempt != wf.attempt:
        return Ignored(f"workflow {wf.id} finished in attempt {wf.attempt}, not {event.attempt}")
    if wf.state in TERMINAL_WORKFLOW_STATES and not isinstance(event, StepEnd):
        # After the end only a step's own end lands; a late start or retry would reopen
        # a step that nothing will close again.
        return Ignored(f"workflow {wf.id} already {wf.state}; a late {event.TYPE} changes nothing")
    if event.attempt < wf.attempt:
        return Ignored(f"attempt {event.attempt} is older than the current attempt {wf.attempt}")
    moved = _moved_step(step, event)
    if not _refines(step, moved) and moved.position <= step.position:
        return Ignored(f"duplicate or late: step {step.name!r} is already {step.state}")
    steps = tuple(moved if s.name == step.name else s for s in wf.steps)
    return Applied(replace(wf, steps=steps))


def _refines(step: Step, moved: Step) -> bool:
    """Whether ``moved`` is the real end of a step its workflow closed, in the same attempt."""
    return (
        step.closed_by_workflow
        and not moved.closed_by_workflow
        and moved.attempt == step.attempt
        and moved.state in FINAL_STEP_STATES
    )


def _moved_step(step: Step, event: StepEvent) -> Step:
    """``step`` as ``event`` leaves it (whether that is forward is checked by the caller)."""
    # A later attempt starts from a clean step: nothing of the old run carries over; nor
    # does what closing it out wrote.
    base = step if event.attempt == step.attempt else Step(step.name, step.needs)
    if base.closed_by_workflow:
        base = replace(base, error=None, finished_at=None, closed_by_workflow=False)
    base = replace(base, attempt=event.attempt)
    match event:
        case StepStarted():
            return replace(
                base, state="running", started_at=event.occurred_at, tries=max(base.tries, 1)
            )
        case StepRetrying():
            return replace(
                base, state="running", tries=event.try_number + 1, exit_code=event.exit_code,
                error=f"try {event.try_number} failed: {event.error};"
                f" retrying in {event.delay_s:.2f}s",
                output_tail=event.output_tail or None,
            )  # fmt: skip
        case StepCompleted():
            return replace(
                base, state="succeeded", exit_code=event.exit_code, error=None,
                output_tail=None, tries=event.tries, runner=event.runner or base.runner,
                started_at=event.started_at or base.started_at,
                finished_at=event.occurred_at, duration_s=event.duration_s,
                summary=_summary(event.summary), entry_key=event.entry_key,
            )  # fmt: skip
        case StepFailed():
            return replace(
                base, state="timed_out" if event.timed_out else "failed",
                exit_code=event.exit_code, error=event.error,
                output_tail=event.output_tail or None, tries=event.tries,
                runner=event.runner or base.runner,
                started_at=event.started_at or base.started_at,
                finished_at=event.occurred_at, duration_s=event.duration_s,
            )  # fmt: skip
        case StepCached():
            return replace(
                base, state="cached", exit_code=0, error=None, output_tail=None,
                finished_at=event.occurred_at, duration_s=event.duration_s,
                summary=_summary(event.summary), entry_key=event.entry_key,
            )  # fmt: skip
        case StepSkipped():
            return replace(base, state="skipped", error=event.reason, finished_at=event.occurred_at)
    return step  # an unknown step event never moves a step


def _summary(summary: dict[str, Any]) -> str | None:
    """As JSON text PostgreSQL can keep: it refuses NUL in jsonb, and a step may write it."""
    return msgspec.json.encode(_without_nul(summary)).decode() if summary else None


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value
