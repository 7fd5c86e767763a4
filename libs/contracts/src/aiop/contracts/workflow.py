"""The workflow definition: a DAG of steps, as written in a workflow file and carried in events."""

import math
from graphlib import CycleError, TopologicalSorter
from pathlib import PurePosixPath
from typing import Any

import msgspec

from aiop.contracts.subjects import InvalidToken, check_token

MAX_STEPS = 200
MAX_TRIES = 100
# All steps' ``files`` together, in UTF-8: they travel in every event that carries the spec.
MAX_FILES_BYTES = 512 * 1024


class InvalidWorkflow(ValueError):
    """A workflow definition that can never run. ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How often a failing step runs again, and how long it waits before each retry.

    The wait before try n+1 is ``backoff * 2**(n-1)`` seconds, capped at ``max_backoff``,
    then shortened by a random fraction of itself of up to ``jitter``, so that steps that
    failed together (a service that went away) do not all come back at the same moment.
    """

    attempts: int = 3  # tries in all, the first one included
    backoff: float = 1.0  # seconds before the first retry
    max_backoff: float = 60.0
    jitter: float = 0.2  # 0: waits exactly as computed; 1: anywhere from 0 to that


class RegistryAuth(msgspec.Struct, frozen=True, kw_only=True):
    """Credentials for pulling a step's image from a private registry."""

    address: str  # the registry, e.g. "ghcr.io"
    username: str
    secret: str  # the secret holding the password or token; resolved like the step's secrets,
    # never put in its environment


class StepSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step: an argv run in an image (recorded by the local runner, pulled by Dagger),
    or, with ``agent``, work for an agent offering that capability (``with_`` is its JSON
    input; ``run`` stays empty; contracts.agents).

    Paths in ``inputs``, ``outputs`` and relative ``caches`` paths are relative to the
    step's work directory (``/work`` in a Dagger container).
    """

    name: str
    run: list[str]  # [] for an agent step: v1 consumers require it (see ``as_written``)
    image: str | None = None
    env: dict[str, str] = {}
    needs: list[str] = []
    secrets: list[str] = []  # names only; values are resolved by the executor
    timeout: float | None = None  # seconds, for each try
    retries: RetryPolicy | None = None  # None: one try
    network: bool = False  # where steps run in a private namespace, whether it has a network
    caches: dict[str, str] = {}  # cache volume name -> where the step sees it, kept across runs
    inputs: dict[str, str] = {}  # a step it needs -> where that step's outputs are put
    outputs: list[str] = []  # files or directories it produces, kept for later steps
    cache: bool = True  # False: it always runs; its result is neither reused nor stored
    registry_auth: RegistryAuth | None = None
    files: dict[str, str] = {}  # relative path -> text, written to the work directory first
    # The step calls AIOP's API: it gets AIOP_URL and AIOP_TOKEN, a short-lived token of
    # whoever submitted the workflow, limited to the workflow's project.
    api: bool = False
    agent: str | None = None  # the capability an agent must offer to take this step
    with_: dict[str, Any] = msgspec.field(default_factory=dict, name="with")


# What a container step has that an agent step cannot: the agent gets its JSON input only.
_CONTAINER_ONLY = (
    "image", "env", "secrets", "network", "caches", "registry_auth", "api", "files", "inputs",
)  # fmt: skip


class WorkflowSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A workflow: named steps with ``needs`` edges, and the executor capabilities it requires."""

    name: str
    steps: list[StepSpec]
    project: str = "default"
    requires: list[str] = []
    labels: dict[str, str] = {}
    # A rerun's steps that take the result an earlier run stored instead of running:
    # step -> its step store entry (set by the rerun, checked against the project), or
    # "" for a step the rerun runs afresh, without a cache lookup.
    reuse: dict[str, str] = {}


def as_written(raw: Any) -> Any:
    """A workflow (decoded JSON or YAML) as a user writes it, in the shape WorkflowSpec
    decodes: an agent step leaves out ``run``, which the v1 events require, so it gets
    ``run: []`` here, at every door a workflow comes in by."""
    steps = raw.get("steps") if isinstance(raw, dict) else None
    if not isinstance(steps, list):
        return raw
    filled = [
        {**step, "run": []} if isinstance(step, dict) and "agent" in step and "run" not in step
        else step
        for step in steps
    ]  # fmt: skip
    return {**raw, "steps": filled}


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
        if step.name in seen:
            problems.append(f"step {step.name!r} is defined twice")
        seen.add(step.name)
        problems += _step_problems(step, names)
    problems += _files_size_problems(spec)
    problems += [f"reuse names unknown step {name!r}" for name in spec.reuse if name not in seen]
    problems += [f"{where} holds a NUL character" for where in _nul_bytes(spec)]
    if not problems:
        try:
            execution_order(spec)
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            problems.append(f"the steps' needs form a cycle: {cycle}")
    return problems


def _step_problems(step: StepSpec, names: list[str]) -> list[str]:
    problems: list[str] = []
    _check(problems, step.name, "step name")
    if step.agent is not None:
        problems += _agent_problems(step)
    elif not step.run or not step.run[0]:
        problems.append(f"step {step.name!r} has an empty run argv")
    elif step.with_:
        problems.append(f"step {step.name!r} has a 'with' input but no 'agent' to take it")
    if step.timeout is not None and not 0 < step.timeout < math.inf:
        problems.append(f"step {step.name!r} has a timeout that is not positive")
    if step.retries is not None:
        problems += [f"step {step.name!r} retries: {p}" for p in _retry_problems(step.retries)]
    problems += [f"step {step.name!r} {p}" for p in _file_problems(step)]
    for need in step.needs:
        if need not in names:
            problems.append(f"step {step.name!r} needs unknown step {need!r}")
        elif need == step.name:
            problems.append(f"step {step.name!r} needs itself")
    return problems


def _agent_problems(step: StepSpec) -> list[str]:
    where = f"step {step.name!r}"
    problems: list[str] = []
    if step.agent is not None:
        _check(problems, step.agent, f"{where} agent capability")
    if step.run:
        problems.append(f"{where} names an agent and a run argv; it takes one of the two")
    problems += [
        f"{where} is taken by an agent and cannot have {field!r}"
        for field in _CONTAINER_ONLY
        if getattr(step, field)
    ]
    return problems


def _retry_problems(policy: RetryPolicy) -> list[str]:
    problems = []
    if not 1 <= policy.attempts <= MAX_TRIES:
        problems.append(f"attempts must be from 1 to {MAX_TRIES}, not {policy.attempts}")
    # Written so that NaN fails too.
    if not 0 <= policy.backoff < math.inf:
        problems.append(f"backoff must be 0 or more seconds, not {policy.backoff}")
    elif not policy.backoff <= policy.max_backoff < math.inf:
        problems.append(
            f"max_backoff must be at least backoff ({policy.backoff}), not {policy.max_backoff}"
        )
    if not 0 <= policy.jitter <= 1:
        problems.append(f"jitter must be from 0 to 1, not {policy.jitter}")
    return problems


def _file_problems(step: StepSpec) -> list[str]:
    """What is wrong with the step's inputs, outputs and caches."""
    problems = [f"takes inputs from {need!r}, which it does not need"
                for need in step.inputs if need not in step.needs]  # fmt: skip
    paths = [("input", p) for p in step.inputs.values()] + [("output", p) for p in step.outputs]
    paths += [("cache", p) for p in step.caches.values() if not p.startswith("/")]
    paths += [("file", p) for p in step.files]
    for what, path in paths:
        if not _inside(path):
            problems.append(f"{what} path {path!r} must be relative and stay in the work directory")
    # A relative cache path is a volume (or a link to one): a file written there would
    # change what every step sharing it sees, or stand where the link must go.
    problems += [f"file path {path!r} is inside cache {name!r}"
                 for path in step.files for name, at in step.caches.items()
                 if _inside(path) and _inside(at) and _within(path, at)]  # fmt: skip
    for name in step.caches:
        try:
            check_token(name, "cache name")
        except InvalidToken as exc:
            problems.append(str(exc))
    return problems


def _files_size_problems(spec: WorkflowSpec) -> list[str]:
    """The file that takes the workflow's ``files`` over MAX_FILES_BYTES, if one does."""
    total = 0
    for step in spec.steps:
        for path, text in step.files.items():
            total += len(text.encode())
            if total > MAX_FILES_BYTES:
                return [
                    f"step {step.name!r} file {path!r} takes the workflow's files to"
                    f" {total} bytes, over the limit of {MAX_FILES_BYTES // 1024} KiB"
                ]
    return []


def _within(path: str, folder: str) -> bool:
    inner, outer = PurePosixPath(path).parts, PurePosixPath(folder).parts
    return inner[: len(outer)] == outer


def _inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\0" not in path


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
            "files": list(step.files.values()),  # their paths are checked with the others
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
