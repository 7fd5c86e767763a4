"""The state machine alone: duplicates, out-of-order, stale attempts, first result wins."""

from aiop.contracts import (
    StepCached,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepSpec,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowQueued,
    WorkflowRequested,
    WorkflowSpec,
    WorkflowStarted,
    WorkflowSubmitted,
)
from aiop.contracts.events import Event
from aiop.task_manager.domain import Applied, Ignored, Illegal, Workflow, fold, new_workflow

SPEC = WorkflowSpec(
    name="build",
    steps=[
        StepSpec(name="lint", run=["ruff"]),
        StepSpec(name="test", run=["pytest"], needs=["lint"]),
    ],
)
WF = "wf1"


def accepted() -> Workflow:
    wf, problems = new_workflow(WorkflowSubmitted(workflow_id=WF, spec=SPEC, principal="me"))
    assert problems == []
    return wf


def apply(wf: Workflow, *events: Event) -> Workflow:
    """Fold each event, keeping the state when it did not apply."""
    for event in events:
        outcome = fold(wf, event)
        if isinstance(outcome, Applied):
            wf = outcome.workflow
    return wf


def requested(attempt: int = 1) -> WorkflowRequested:
    return WorkflowRequested(workflow_id=WF, spec=SPEC, pool="default", attempt=attempt)


def started(attempt: int = 1, executor: str = "ex1") -> WorkflowStarted:
    return WorkflowStarted(workflow_id=WF, executor_id=executor, attempt=attempt)


def step_done(step: str, attempt: int = 1) -> StepCompleted:
    return StepCompleted(workflow_id=WF, step=step, attempt=attempt, duration_s=0.5)


def test_new_workflow_is_accepted_with_pending_steps() -> None:
    wf = accepted()
    assert wf.state == "accepted"
    assert [(s.name, s.state, s.needs) for s in wf.steps] == [
        ("lint", "pending", ()),
        ("test", "pending", ("lint",)),
    ]


def test_invalid_spec_is_rejected_with_every_reason() -> None:
    bad = WorkflowSpec(name="b", steps=[StepSpec(name="a", run=["x"], needs=["zz"])])
    wf, problems = new_workflow(WorkflowSubmitted(workflow_id=WF, spec=bad, principal="me"))
    assert wf.state == "rejected"
    assert problems
    assert "unknown step 'zz'" in problems[0]
    assert wf.reason == "; ".join(problems)


def test_the_happy_path() -> None:
    wf = apply(
        accepted(),
        WorkflowQueued(workflow_id=WF, reason="no executor with capability gpu"),
        requested(),
        started(),
        StepStarted(workflow_id=WF, step="lint"),
        step_done("lint"),
        StepStarted(workflow_id=WF, step="test"),
        step_done("test"),
        WorkflowCompleted(workflow_id=WF, executor_id="ex1"),
    )
    assert (wf.state, wf.attempt, wf.executor_id, wf.reason) == ("succeeded", 1, "ex1", None)
    assert [s.state for s in wf.steps] == ["succeeded", "succeeded"]
    assert wf.started_at is not None
    assert wf.finished_at is not None


def test_queued_records_why_it_waits() -> None:
    wf = apply(accepted(), WorkflowQueued(workflow_id=WF, reason="no executor in pool gpu"))
    assert (wf.state, wf.reason) == ("queued", "no executor in pool gpu")


def test_duplicates_have_no_effect() -> None:
    wf = apply(accepted(), requested(), started())
    for event in (started(), requested(), WorkflowQueued(workflow_id=WF, reason="late")):
        assert isinstance(fold(wf, event), Ignored)
    wf = apply(wf, step_done("lint"))
    assert isinstance(fold(wf, step_done("lint")), Ignored)
    assert isinstance(fold(wf, StepStarted(workflow_id=WF, step="lint")), Ignored)


def test_out_of_order_events_end_in_the_same_state() -> None:
    events: list[Event] = [
        WorkflowCompleted(workflow_id=WF, executor_id="ex1"),
        step_done("test"),
        StepStarted(workflow_id=WF, step="test"),
        started(),
        step_done("lint"),
        requested(),
        WorkflowQueued(workflow_id=WF, reason="late"),
    ]
    wf = apply(accepted(), *events)
    assert wf.state == "succeeded"
    assert [s.state for s in wf.steps] == ["succeeded", "succeeded"]
    # Step events of the attempt that finished still land after the workflow finished.
    assert wf.step("test").started_at is None  # type: ignore[union-attr]


def test_a_late_queued_does_not_hide_that_it_was_sent() -> None:
    wf = apply(accepted(), requested(), WorkflowQueued(workflow_id=WF, reason="no executor"))
    assert wf.state == "queued"
    assert wf.reason is not None
    assert "pool default" in wf.reason


def test_progress_of_an_older_attempt_is_ignored() -> None:
    wf = apply(accepted(), requested(1), started(1), requested(2))
    assert (wf.state, wf.attempt, wf.executor_id) == ("queued", 2, None)
    assert isinstance(fold(wf, started(1)), Ignored)
    assert isinstance(fold(wf, StepStarted(workflow_id=WF, step="lint", attempt=1)), Ignored)


def test_resend_resets_unfinished_steps_for_the_new_attempt() -> None:
    wf = apply(
        accepted(), requested(1), started(1), step_done("lint", 1),
        StepStarted(workflow_id=WF, step="test", attempt=1), requested(2),
    )  # fmt: skip
    assert [(s.state, s.attempt) for s in wf.steps] == [("succeeded", 1), ("pending", 2)]
    # The new attempt reruns every step; its events move each one forward again.
    wf = apply(wf, started(2, "ex2"), StepStarted(workflow_id=WF, step="lint", attempt=2))
    assert [(s.state, s.attempt) for s in wf.steps] == [("running", 2), ("pending", 2)]
    assert (wf.state, wf.executor_id) == ("running", "ex2")


def test_first_terminal_event_wins_from_any_attempt() -> None:
    wf = apply(accepted(), requested(1), started(1), requested(2), started(2, "ex2"))
    # The old executor was only slow: its result arrives first and counts.
    wf = apply(wf, WorkflowFailed(workflow_id=WF, executor_id="ex1", reason="exit 1", attempt=1))
    assert (wf.state, wf.attempt, wf.reason) == ("failed", 1, "exit 1")
    later = WorkflowCompleted(workflow_id=WF, executor_id="ex2", attempt=2)
    assert isinstance(fold(wf, later), Ignored)
    for event in (requested(3), started(3), WorkflowQueued(workflow_id=WF, reason="x", attempt=3)):
        assert isinstance(fold(wf, event), Ignored)
    # Steps of another attempt do not rewrite the result that won.
    assert isinstance(fold(wf, step_done("lint", 2)), Ignored)


def test_first_step_result_wins() -> None:
    wf = apply(accepted(), started(), step_done("lint"))
    failed = StepFailed(workflow_id=WF, step="lint", exit_code=1, error="boom")
    assert isinstance(fold(wf, failed), Ignored)


def test_step_failure_keeps_its_evidence() -> None:
    wf = apply(
        accepted(),
        started(),
        StepFailed(workflow_id=WF, step="lint", exit_code=2, error="exit 2", output_tail="E501"),
        StepSkipped(workflow_id=WF, step="test", reason="needs lint, which failed"),
    )
    lint, test = wf.steps
    assert (lint.state, lint.exit_code, lint.error, lint.output_tail) == (
        "failed", 2, "exit 2", "E501",
    )  # fmt: skip
    assert (test.state, test.error) == ("skipped", "needs lint, which failed")


def test_illegal_transitions_are_refused_with_a_reason() -> None:
    outcome = fold(accepted(), StepStarted(workflow_id=WF, step="deploy"))
    assert isinstance(outcome, Illegal)
    assert "no step 'deploy'" in outcome.reason
    bad = WorkflowSpec(name="b", steps=[])
    rejected, _ = new_workflow(WorkflowSubmitted(workflow_id=WF, spec=bad, principal="me"))
    for event in (started(), WorkflowCompleted(workflow_id=WF, executor_id="ex1"), requested()):
        outcome = fold(rejected, event)
        assert isinstance(outcome, Illegal)
        assert "rejected" in outcome.reason


def failed(reason: str = "executor error: RuntimeError: lost", attempt: int = 1) -> WorkflowFailed:
    return WorkflowFailed(workflow_id=WF, executor_id="ex1", reason=reason, attempt=attempt)


def test_completed_closes_out_steps_still_pending_or_running() -> None:
    wf = apply(
        accepted(), requested(), started(), StepStarted(workflow_id=WF, step="lint"),
        WorkflowCompleted(workflow_id=WF, executor_id="ex1"),
    )  # fmt: skip
    assert wf.state == "succeeded"
    assert [(s.state, s.attempt, s.closed_by_workflow, s.error) for s in wf.steps] == [
        ("succeeded", 1, True, None), ("succeeded", 1, True, None),
    ]  # fmt: skip
    assert all(s.finished_at == wf.finished_at for s in wf.steps)


def test_failed_closes_pending_as_skipped_and_running_as_cancelled() -> None:
    wf = apply(
        accepted(), requested(), started(), StepStarted(workflow_id=WF, step="lint"), failed()
    )
    lint, test = wf.steps
    assert (wf.state, lint.state, test.state) == ("failed", "cancelled", "skipped")
    assert lint.closed_by_workflow
    assert test.closed_by_workflow
    for step in wf.steps:
        assert step.error is not None
        assert "workflow failed" in step.error
        assert "executor error: RuntimeError: lost" in step.error


def test_a_late_real_end_refines_a_closed_step() -> None:
    wf = apply(
        accepted(), requested(), started(), StepStarted(workflow_id=WF, step="lint"), failed()
    )
    late = StepFailed(
        workflow_id=WF, step="lint", exit_code=2, error="exit 2", output_tail="E501",
        duration_s=1.5,
    )  # fmt: skip
    wf = apply(wf, late, StepSkipped(workflow_id=WF, step="test", reason="needs lint"))
    lint, test = wf.steps
    assert (lint.state, lint.exit_code, lint.error, lint.duration_s, lint.closed_by_workflow) == (
        "failed", 2, "exit 2", 1.5, False,
    )  # fmt: skip
    assert lint.started_at is not None  # from the StepStarted before the close-out
    assert (test.state, test.error, test.closed_by_workflow) == ("skipped", "needs lint", False)
    # Refined once: the real end is not replaced by another one, nor by a copy of itself.
    assert isinstance(fold(wf, late), Ignored)
    assert isinstance(fold(wf, step_done("lint")), Ignored)


def test_a_late_real_success_refines_a_step_closed_by_completion() -> None:
    wf = apply(accepted(), started(), WorkflowCompleted(workflow_id=WF, executor_id="ex1"))
    wf = apply(wf, StepCompleted(workflow_id=WF, step="lint", exit_code=0, duration_s=0.25))
    lint = wf.step("lint")
    assert lint is not None
    assert (lint.state, lint.exit_code, lint.duration_s, lint.closed_by_workflow) == (
        "succeeded", 0, 0.25, False,
    )  # fmt: skip


def test_a_late_start_does_not_reopen_a_closed_step() -> None:
    wf = apply(accepted(), requested(), started(), failed())
    outcome = fold(wf, StepStarted(workflow_id=WF, step="test"))
    assert isinstance(outcome, Ignored)
    assert [s.state for s in wf.steps] == ["skipped", "skipped"]
    # Nor does the end of another attempt refine it.
    assert isinstance(fold(wf, step_done("test", attempt=2)), Ignored)


def test_in_order_runs_end_with_steps_as_their_events_left_them() -> None:
    run = apply(accepted(), requested(), started(), StepStarted(workflow_id=WF, step="lint"))
    ok = apply(run, step_done("lint"), StepStarted(workflow_id=WF, step="test"), step_done("test"))
    done = apply(ok, WorkflowCompleted(workflow_id=WF, executor_id="ex1"))
    assert done.steps == ok.steps
    bad = apply(
        run,
        StepFailed(workflow_id=WF, step="lint", exit_code=1, error="exit 1"),
        StepSkipped(workflow_id=WF, step="test", reason="needs lint, which failed"),
    )
    ended = apply(bad, failed("step lint failed"))
    assert ended.steps == bad.steps
    assert not any(s.closed_by_workflow for s in (*done.steps, *ended.steps))


def retrying(step: str, failed_try: int, attempt: int = 1) -> StepRetrying:
    return StepRetrying(
        workflow_id=WF, step=step, attempt=attempt, try_number=failed_try, exit_code=1,
        error="exited with code 1", delay_s=0.5, output_tail=f"try {failed_try}",
    )  # fmt: skip


def test_a_retried_step_stays_running_and_counts_its_tries() -> None:
    lint_started = StepStarted(workflow_id=WF, step="lint", attempt=1)
    wf = apply(accepted(), requested(), started(), lint_started, retrying("lint", 1))
    lint = wf.step("lint")
    assert lint is not None
    assert (lint.state, lint.tries, lint.exit_code) == ("running", 2, 1)
    assert lint.error == "try 1 failed: exited with code 1; retrying in 0.50s"
    # A duplicate, an older retry, or the start arriving late moves nothing back.
    for late in (retrying("lint", 1), lint_started):
        assert isinstance(fold(apply(wf, retrying("lint", 2)), late), Ignored)
    done = apply(wf, retrying("lint", 2), StepCompleted(workflow_id=WF, step="lint", attempt=1,
                                                         tries=3))  # fmt: skip
    lint = done.step("lint")
    assert lint is not None
    assert (lint.state, lint.tries, lint.error, lint.output_tail) == ("succeeded", 3, None, None)
    # A retry that arrives after the end is late.
    assert isinstance(fold(done, retrying("lint", 2)), Ignored)


def test_a_step_past_its_timeout_ends_timed_out() -> None:
    failed = StepFailed(
        workflow_id=WF, step="lint", attempt=1, exit_code=None, error="timed out after 1s",
        tries=2, timed_out=True,
    )  # fmt: skip
    wf = apply(accepted(), requested(), started(), retrying("lint", 1), failed)
    lint = wf.step("lint")
    assert lint is not None
    assert (lint.state, lint.tries, lint.error) == ("timed_out", 2, "timed out after 1s")
    assert isinstance(fold(wf, failed), Ignored)


def cancelled(executor: str | None = "ex1") -> WorkflowCancelled:
    return WorkflowCancelled(workflow_id=WF, executor_id=executor, reason="cancelled by bob",
                             cancelled_by="bob")  # fmt: skip


def test_a_cancel_ends_the_workflow_and_closes_its_steps() -> None:
    lint_started = StepStarted(workflow_id=WF, step="lint", attempt=1)
    wf = apply(accepted(), requested(), started(), lint_started, cancelled())
    assert (wf.state, wf.reason, wf.executor_id) == ("cancelled", "cancelled by bob", "ex1")
    lint, test = wf.steps
    assert (lint.state, lint.error) == ("cancelled", "stopped: cancelled by bob")
    assert (test.state, test.error) == ("skipped", "never started: cancelled by bob")
    # A second cancel, or the run's own end arriving after it, changes nothing.
    assert isinstance(fold(wf, cancelled()), Ignored)
    assert isinstance(fold(wf, WorkflowCompleted(workflow_id=WF, executor_id="ex1")), Ignored)


def test_a_workflow_cancelled_before_any_executor_took_it() -> None:
    wf = apply(accepted(), requested(), cancelled(executor=None))
    assert (wf.state, wf.executor_id) == ("cancelled", None)
    assert {s.state for s in wf.steps} == {"skipped"}


def test_a_cached_step_ends_cached_without_starting() -> None:
    hit = StepCached(workflow_id=WF, step="lint", attempt=1, cache_key="k", from_workflow_id="old",
                     duration_s=0.002)  # fmt: skip
    wf = apply(accepted(), requested(), started(), hit)
    lint = wf.step("lint")
    assert lint is not None
    assert (lint.state, lint.exit_code, lint.duration_s) == ("cached", 0, 0.002)
    assert isinstance(fold(wf, StepStarted(workflow_id=WF, step="lint", attempt=1)), Ignored)
