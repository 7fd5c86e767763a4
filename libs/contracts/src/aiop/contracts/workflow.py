"""The workflow definition: a DAG of steps, as written in a workflow file and carried in events."""

from graphlib import CycleError, TopologicalSorter

import msgspec

from aiop.contracts.subjects import InvalidToken, check_token

MAX_STEPS = 200


class InvalidWorkflow(ValueError):
    """A workflow definition that can never run. ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StepSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step: an argv run in an image (recorded by the local runner, pulled by Dagger)."""

    name: str
    run: list[str]
    image: str | None = None
    env: dict[str, str] = {}
    needs: list[str] = []
    secrets: list[str] = []  # names only; values are resolved by the executor
    timeout: float | None = None  # seconds
    network: bool = False  # where steps run in a private namespace, whether it has a network


class WorkflowSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A workflow: named steps with ``needs`` edges, and the executor capabilities it requires."""

    name: str
    steps: list[StepSpec]
    project: str = "default"
    requires: list[str] = []
    labels: dict[str, str] = {}


def validate_spec(spec: WorkflowSpec) -> list[str]:
    """Every reason ``spec`` cannot run, empty when it is valid. Also returns the DAG order check."""
    problems: list[str] = []
    _check(problems, spec.name, "workflow name")
    _check(problems, spec.project, "project")
    if not spec.steps:
        problems.append("a workflow needs at least one step")
    if len(spec.steps) > MAX_STEPS:
        problems.append(f"a workflow has at most {MAX_STEPS} steps, this one has {len(spec.steps)}")
    names = [s.name for s in spec.steps]
    seen: set[str] = set()
    for step in spec.steps:
        _check(problems, step.name, "step name")
        if step.name in seen:
            problems.append(f"step {step.name!r} is defined twice")
        seen.add(step.name)
        if not step.run or not step.run[0]:
            problems.append(f"step {step.name!r} has an empty run argv")
        if step.timeout is not None and step.timeout <= 0:
            problems.append(f"step {step.name!r} has a timeout that is not positive")
        for need in step.needs:
            if need not in names:
                problems.append(f"step {step.name!r} needs unknown step {need!r}")
            elif need == step.name:
                problems.append(f"step {step.name!r} needs itself")
    problems += [f"{where} holds a NUL character" for where in _nul_bytes(spec)]
    if not problems:
        try:
            execution_order(spec)
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            problems.append(f"the steps' needs form a cycle: {cycle}")
    return problems


def _nul_bytes(spec: WorkflowSpec) -> list[str]:
    """Where a NUL character hides in ``spec``. No argv or environment can carry one (the
    operating system ends a string at it), and no store that keeps the spec accepts it."""
    found = [f"label {k!r}" for k, v in spec.labels.items() if "\0" in k + v]
    for step in spec.steps:
        fields = {
            "argv": step.run,
            "image": [step.image or ""],
            "env": [*step.env, *step.env.values()],
            "needs": step.needs,
            "secrets": step.secrets,
        }
        found += [
            f"step {step.name!r} {what}"
            for what, values in fields.items()
            if any("\0" in v for v in values)
        ]
    return found


def execution_order(spec: WorkflowSpec) -> list[str]:
    """Step names in an order that respects ``needs``; raises CycleError on a cycle."""
    graph = {s.name: set(s.needs) for s in spec.steps}
    return list(TopologicalSorter(graph).static_order())


def _check(problems: list[str], value: str, what: str) -> None:
    try:
        check_token(value, what)
    except InvalidToken as exc:
        problems.append(str(exc))
