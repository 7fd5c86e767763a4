"""Planning a run: which steps are ready, which are skipped, when a run is over."""

from aiop.contracts import StepSpec
from aiop.dagger_executor.domain.plan import RunPlan, StepState


def step(name: str, *needs: str) -> StepSpec:
    return StepSpec(name=name, run=["true"], needs=list(needs))


def test_independent_steps_are_ready_together_in_workflow_order() -> None:
    plan = RunPlan([step("b"), step("a"), step("c", "a")])
    assert plan.ready() == ["b", "a"]


def test_a_step_is_ready_only_once_every_need_succeeded() -> None:
    plan = RunPlan([step("a"), step("b"), step("c", "a", "b")])
    for name in ("a", "b"):
        plan.start(name)
    plan.finish("a", succeeded=True)
    assert plan.ready() == []
    plan.finish("b", succeeded=True)
    assert plan.ready() == ["c"]


def test_a_failed_need_skips_dependents_transitively_with_reasons() -> None:
    plan = RunPlan([step("build"), step("test", "build"), step("deploy", "test"), step("lint")])
    plan.start("build")
    plan.start("lint")
    plan.finish("build", succeeded=False)
    assert plan.skip_blocked() == [
        ("test", "needs 'build', which failed"),
        ("deploy", "needs 'test', which was skipped"),
    ]
    assert not plan.finished  # lint still runs
    plan.finish("lint", succeeded=True)
    assert plan.finished
    assert plan.failed == ["build"]
    assert plan.states["deploy"] is StepState.SKIPPED


def test_skip_blocked_reports_each_step_once() -> None:
    plan = RunPlan([step("a"), step("b", "a")])
    plan.start("a")
    plan.finish("a", succeeded=False)
    assert len(plan.skip_blocked()) == 1
    assert plan.skip_blocked() == []


def test_all_succeeded_run_is_finished_without_failures() -> None:
    plan = RunPlan([step("a"), step("b", "a")])
    for name in ("a", "b"):
        assert plan.ready() == [name]
        plan.start(name)
        plan.finish(name, succeeded=True)
    assert plan.finished
    assert plan.failed == []
