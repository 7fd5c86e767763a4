"""The summary fold: idempotent, order-tolerant, terminal outcomes sticky."""

import itertools
from datetime import UTC, datetime, timedelta

from aiop.contracts import events as ev
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.reporter.domain import ReportState, fold, to_report

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = WorkflowSpec(
    name="ci",
    steps=[StepSpec(name="build", run=["make"]), StepSpec(name="test", run=["pytest"])],
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def happy_run(wf: str = "wf1") -> list[ev.Event]:
    return [
        ev.WorkflowAccepted(workflow_id=wf, spec=SPEC, occurred_at=at(0)),
        ev.WorkflowStarted(workflow_id=wf, executor_id="x1", occurred_at=at(1)),
        ev.StepStarted(workflow_id=wf, step="build", occurred_at=at(2)),
        ev.StepCompleted(workflow_id=wf, step="build", occurred_at=at(3)),
        ev.StepStarted(workflow_id=wf, step="test", occurred_at=at(4)),
        ev.StepFailed(workflow_id=wf, step="test", exit_code=1, error="boom", occurred_at=at(5)),
        ev.WorkflowFailed(
            workflow_id=wf, executor_id="x1", reason="test failed", occurred_at=at(6)
        ),
    ]


def fold_all(events: list[ev.Event]) -> ReportState:
    state = None
    for event in events:
        state = fold(state, event)
    assert state is not None
    return state


def test_happy_run_summary() -> None:
    report = to_report(fold_all(happy_run()))
    assert report.outcome == "failed"
    assert (report.steps_total, report.steps_succeeded, report.steps_failed) == (2, 1, 1)
    assert report.duration_s == 5.0
    assert report.first_event_at == at(0)
    assert report.last_event_at == at(6)
    assert report.executor_id == "x1"


def test_duplicates_change_nothing() -> None:
    events = happy_run()
    once = fold_all(events)
    assert fold_all([e for e in events for _ in range(2)]) == once
    for event in events:
        assert fold(once, event) == once


def test_any_order_gives_the_same_summary() -> None:
    events = happy_run()
    expected = fold_all(events)
    # Every order of a representative subset, plus the full list reversed.
    for order in itertools.permutations(events[1:6]):
        assert fold_all([events[0], *order, events[6]]) == expected
    assert fold_all(list(reversed(events))) == expected


def test_terminal_outcome_is_sticky() -> None:
    wf = "wf2"
    state = fold_all(
        [
            ev.WorkflowAccepted(workflow_id=wf, spec=SPEC, occurred_at=at(0)),
            ev.WorkflowCompleted(workflow_id=wf, executor_id="x1", occurred_at=at(9)),
        ]
    )
    late = [
        ev.WorkflowQueued(workflow_id=wf, reason="no executor", attempt=3, occurred_at=at(1)),
        ev.WorkflowStarted(workflow_id=wf, executor_id="x1", attempt=2, occurred_at=at(2)),
        ev.WorkflowFailed(workflow_id=wf, executor_id="x1", reason="late", occurred_at=at(3)),
    ]
    after = state
    for event in late:
        after = fold(after, event)
    assert after.outcome == "succeeded"
    assert to_report(after).duration_s == 7.0  # started (t=2) -> completed (t=9)


def test_rejected_keeps_the_reasons() -> None:
    state = fold_all(
        [
            ev.WorkflowSubmitted(workflow_id="wf3", spec=SPEC, principal="me", occurred_at=at(0)),
            ev.WorkflowRejected(workflow_id="wf3", reasons=["bad", "worse"], occurred_at=at(1)),
        ]
    )
    assert state.outcome == "rejected"
    assert state.reason == "bad; worse"
    assert to_report(state).duration_s is None


def test_newer_attempt_moves_queued_and_steps_forward() -> None:
    wf = "wf4"
    state = fold_all(
        [
            ev.WorkflowStarted(workflow_id=wf, executor_id="x1", attempt=1, occurred_at=at(1)),
            ev.StepFailed(
                workflow_id=wf, step="build", exit_code=None, error="lost", occurred_at=at(2)
            ),
            ev.WorkflowQueued(workflow_id=wf, reason="executor lost", attempt=2, occurred_at=at(3)),
            ev.StepStarted(workflow_id=wf, step="build", attempt=2, occurred_at=at(5)),
        ]
    )
    assert state.outcome == "queued"
    assert state.reason == "executor lost"
    assert state.steps["build"].state == "running"
    # A late event of the old attempt moves nothing back.
    assert fold(state, ev.StepCompleted(workflow_id=wf, step="build", occurred_at=at(4))) == state


def test_steps_without_spec_count_as_seen() -> None:
    state = fold_all(
        [
            ev.StepStarted(workflow_id="wf5", step="a", occurred_at=at(1)),
            ev.StepSkipped(workflow_id="wf5", step="b", reason="a failed", occurred_at=at(2)),
        ]
    )
    report = to_report(state)
    assert (report.outcome, report.steps_total, report.steps_skipped) == ("submitted", 2, 1)


def test_the_report_names_its_project_for_the_gateways_check() -> None:
    spec = WorkflowSpec(name="ci", project="team-a", steps=SPEC.steps)
    report = to_report(fold_all([ev.WorkflowAccepted(workflow_id="wf9", spec=spec)]))
    assert report.project == "team-a"
    # Events without the spec leave it unknown rather than guessed.
    started = ev.WorkflowStarted(workflow_id="wf8", executor_id="x1")
    assert to_report(fold_all([started])).project is None


def test_a_cancelled_run_reports_cancelled_with_its_reason() -> None:
    events = [
        *happy_run()[:5],
        ev.WorkflowCancelled(workflow_id="wf1", executor_id="x1", reason="cancelled by bob",
                             cancelled_by="bob", occurred_at=at(5)),
        ev.WorkflowFailed(workflow_id="wf1", executor_id="x1", reason="late", occurred_at=at(6)),
    ]  # fmt: skip
    state = fold_all(events)
    assert (state.outcome, state.reason) == ("cancelled", "cancelled by bob")
    assert to_report(state).outcome == "cancelled"
