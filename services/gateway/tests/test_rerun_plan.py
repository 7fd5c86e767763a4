"""Which steps a rerun takes from the run it reruns, and which run again."""

import pytest

from aiop.contracts.queries import StepView
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.gateway.domain.rerun import CannotRerun, check_rerunnable, reused_steps

# a -> b -> d, a -> c: a diamond without its last edge.
SPEC = WorkflowSpec(
    name="w",
    steps=[
        StepSpec(name="a", run=["true"]),
        StepSpec(name="b", run=["true"], needs=["a"]),
        StepSpec(name="c", run=["true"], needs=["a"]),
        StepSpec(name="d", run=["true"], needs=["b"]),
    ],
)


def steps(**states: str) -> list[StepView]:
    return [
        StepView(name=n, state=s, entry_key=f"key-{n}" if s in ("succeeded", "cached") else None)  # type: ignore[arg-type]
        for n, s in states.items()
    ]


def test_without_a_step_what_failed_and_what_follows_it_run_again() -> None:
    earlier = steps(a="succeeded", b="failed", c="cached", d="skipped")
    assert reused_steps(SPEC, earlier, None) == {"a": "key-a", "c": "key-c", "b": "", "d": ""}


def test_from_a_step_it_and_its_dependants_run_again() -> None:
    earlier = steps(a="succeeded", b="succeeded", c="succeeded", d="succeeded")
    assert reused_steps(SPEC, earlier, "a") == {"a": "", "b": "", "c": "", "d": ""}
    assert reused_steps(SPEC, earlier, "b") == {"a": "key-a", "c": "key-c", "b": "", "d": ""}


def test_a_result_whose_place_was_not_recorded_is_not_reused() -> None:
    earlier = [*steps(b="failed"), StepView(name="a", state="succeeded")]
    assert reused_steps(SPEC, earlier, None) == {"b": "", "c": "", "d": ""}


def test_an_unknown_step_or_a_run_that_has_not_ended_cannot_be_rerun() -> None:
    with pytest.raises(CannotRerun, match="no step 'x'"):
        reused_steps(SPEC, [], "x")
    for state, from_step in (("running", None), ("rejected", None), ("succeeded", None)):
        with pytest.raises(CannotRerun):
            check_rerunnable(state, from_step)
    check_rerunnable("succeeded", "b")
    check_rerunnable("cancelled", None)
