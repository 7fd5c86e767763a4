"""Which steps of a rerun run again and which take the result the earlier run stored.

From a step: that step and every step after it (that needs it, directly or not) run
again. Without one: every step that did not succeed, and every step after those. The
others reuse their result, when the earlier run recorded where it is stored."""

from aiop.contracts.queries import StepView
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from aiop.contracts.workflow import WorkflowSpec

DONE = frozenset({"succeeded", "cached"})


class CannotRerun(ValueError):
    """Why this run cannot be rerun as asked."""


def check_rerunnable(state: str, from_step: str | None) -> None:
    if state not in TERMINAL_WORKFLOW_STATES:
        raise CannotRerun(f"the workflow is still {state}: rerun it once it has ended")
    if state == "rejected":
        raise CannotRerun("the workflow was rejected: it never ran, so nothing can be reused")
    if state == "succeeded" and from_step is None:
        raise CannotRerun("the workflow succeeded: name a step to rerun from (--from STEP)")


def reused_steps(
    spec: WorkflowSpec, steps: list[StepView], from_step: str | None
) -> dict[str, str]:
    """Step -> the stored result it takes, for the steps of ``spec`` that do not run
    again; "" for those that do: they run afresh, without looking in the step cache (a
    rerun is asked for because the result is in doubt)."""
    names = {s.name for s in spec.steps}
    if from_step is not None and from_step not in names:
        raise CannotRerun(f"the workflow has no step {from_step!r}")
    earlier = {s.name: s for s in steps}
    start = (
        {from_step}
        if from_step is not None
        else {n for n in names if n not in earlier or earlier[n].state not in DONE}
    )
    again = _with_dependants(spec, start)
    reused = {
        name: step.entry_key
        for name, step in earlier.items()
        if name in names and name not in again and step.state in DONE and step.entry_key
    }
    return {**reused, **dict.fromkeys(sorted(again), "")}


def _with_dependants(spec: WorkflowSpec, start: set[str]) -> set[str]:
    found = set(start)
    changed = True
    while changed:  # at most one pass per step: the DAG is small
        changed = False
        for step in spec.steps:
            if step.name not in found and found.intersection(step.needs):
                found.add(step.name)
                changed = True
    return found
