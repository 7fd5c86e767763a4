"""A workflow's summary as a fold over its events: idempotent and order-tolerant.

JetStream delivers at least once, in any order after a retry, and reporter replicas
write the same summary, so nothing here counts events. Each event can only move a state *forward* by
``(attempt, rank)``; replaying an event, or an older one arriving late, changes nothing.
Counts are derived from the latest state of each step when the report is read.
"""

from datetime import datetime

import msgspec

from aiop.contracts import events as ev
from aiop.contracts.queries import WorkflowReport
from aiop.contracts.states import STEP_RANK, TERMINAL_WORKFLOW_STATES, WORKFLOW_RANK


class StepMark(msgspec.Struct, frozen=True, kw_only=True):
    """The latest known state of one step and the attempt it belongs to."""

    state: str
    attempt: int = 1


class ReportState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the reporter keeps per workflow in KV (richer than WorkflowReport)."""

    workflow_id: str
    outcome: str = "submitted"
    outcome_attempt: int = 0
    reason: str | None = None
    step_names: list[str] = []  # from the spec, so steps never reported count as pending
    project: str | None = None  # from the spec: who may read the report
    steps: dict[str, StepMark] = {}
    started_at: datetime | None = None
    started_attempt: int = 0
    finished_at: datetime | None = None
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    executor_id: str | None = None
    executor_attempt: int = 0


def _move_outcome(state: ReportState, outcome: str, attempt: int, at: datetime) -> ReportState:
    """Apply a workflow state change if it moves forward; the first terminal state wins."""
    if state.outcome in TERMINAL_WORKFLOW_STATES:
        return state
    if outcome not in TERMINAL_WORKFLOW_STATES and (attempt, WORKFLOW_RANK[outcome]) <= (
        state.outcome_attempt,
        WORKFLOW_RANK[state.outcome],
    ):
        return state
    finished = at if outcome in TERMINAL_WORKFLOW_STATES else state.finished_at
    return msgspec.structs.replace(
        state, outcome=outcome, outcome_attempt=attempt, finished_at=finished
    )


def _move_step(state: ReportState, step: str, new: StepMark) -> ReportState:
    """A step moves forward by (attempt, rank); within one attempt its first end state wins."""
    old = state.steps.get(step)
    if old is not None and (new.attempt, STEP_RANK[new.state]) <= (
        old.attempt,
        STEP_RANK[old.state],
    ):
        return state
    return msgspec.structs.replace(state, steps={**state.steps, step: new})


def _fold_workflow(state: ReportState, event: ev.Event) -> ReportState:
    at = event.occurred_at
    match event:
        case ev.WorkflowSubmitted(spec=spec) | ev.WorkflowAccepted(spec=spec):
            if not state.step_names:
                state = msgspec.structs.replace(
                    state, step_names=[s.name for s in spec.steps], project=spec.project
                )
            outcome = "submitted" if isinstance(event, ev.WorkflowSubmitted) else "accepted"
            return _move_outcome(state, outcome, 0, at)
        case ev.WorkflowRejected(reasons=reasons):
            state = _move_outcome(state, "rejected", 0, at)
            return _with_reason(state, "rejected", "; ".join(reasons))
        case ev.WorkflowQueued(attempt=attempt, reason=reason):
            return _with_reason(_move_outcome(state, "queued", attempt, at), "queued", reason)
        case ev.WorkflowStarted(attempt=attempt, executor_id=executor):
            state = _with_executor(state, executor, attempt)
            if attempt >= state.started_attempt:
                state = msgspec.structs.replace(state, started_at=at, started_attempt=attempt)
            return _move_outcome(state, "running", attempt, at)
        case ev.WorkflowCompleted(attempt=attempt, executor_id=executor):
            state = _with_executor(state, executor, attempt)
            return _move_outcome(state, "succeeded", attempt, at)
        case ev.WorkflowFailed(attempt=attempt, executor_id=executor, reason=reason):
            state = _with_executor(state, executor, attempt)
            return _with_reason(_move_outcome(state, "failed", attempt, at), "failed", reason)
        case ev.WorkflowCancelled(attempt=attempt, executor_id=executor, reason=reason):
            if executor is not None:
                state = _with_executor(state, executor, attempt)
            state = _move_outcome(state, "cancelled", attempt, at)
            return _with_reason(state, "cancelled", reason)
    return state  # requested, and anything newer: not part of the summary


def _with_reason(state: ReportState, outcome: str, reason: str) -> ReportState:
    # Only the reason of the state the workflow is actually in is kept.
    return msgspec.structs.replace(state, reason=reason) if state.outcome == outcome else state


def _with_executor(state: ReportState, executor: str, attempt: int) -> ReportState:
    if attempt < state.executor_attempt:
        return state
    return msgspec.structs.replace(state, executor_id=executor, executor_attempt=attempt)


_STEP_STATES: dict[type[ev.Event], str] = {
    ev.StepStarted: "running",
    ev.StepCompleted: "succeeded",
    ev.StepCached: "cached",
    ev.StepFailed: "failed",
    ev.StepSkipped: "skipped",
}


def fold(state: ReportState | None, event: ev.Event) -> ReportState:
    """``state`` with ``event`` applied; folding the same event twice equals folding it once."""
    workflow_id = getattr(event, "workflow_id", None)
    if workflow_id is None:
        raise ValueError(f"{event.TYPE} is not about a workflow")
    if state is None:
        state = ReportState(workflow_id=workflow_id)
    at = event.occurred_at
    # min/max are idempotent and commutative, unlike "the first/last one seen".
    state = msgspec.structs.replace(
        state,
        first_event_at=min(filter(None, (state.first_event_at, at))),
        last_event_at=max(filter(None, (state.last_event_at, at))),
    )
    step_state = _STEP_STATES.get(type(event))
    if step_state is not None and isinstance(event, ev.StepEvent):
        return _move_step(state, event.step, StepMark(state=step_state, attempt=event.attempt))
    return _fold_workflow(state, event)


def to_report(state: ReportState) -> WorkflowReport:
    """The query answer: counts derived from the latest state of each step."""
    names = set(state.step_names) | set(state.steps)
    latest = [mark.state for mark in state.steps.values()]
    duration = None
    if state.started_at is not None and state.finished_at is not None:
        duration = max(0.0, (state.finished_at - state.started_at).total_seconds())
    return WorkflowReport(
        workflow_id=state.workflow_id,
        outcome=state.outcome,
        steps_total=len(names),
        steps_succeeded=latest.count("succeeded") + latest.count("cached"),  # a result reused
        steps_failed=latest.count("failed"),
        steps_skipped=latest.count("skipped"),
        duration_s=duration,
        first_event_at=state.first_event_at,
        last_event_at=state.last_event_at,
        executor_id=state.executor_id,
        project=state.project,
    )
