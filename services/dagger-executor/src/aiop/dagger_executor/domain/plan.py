"""Which steps of a run may start now, and which can no longer run at all.

The plan only tracks states; the caller starts steps and reports how they ended. Steps
are offered in the order the workflow lists them, so runs are reproducible.
"""

from collections.abc import Sequence
from enum import StrEnum

from aiop.contracts import StepSpec


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


_DID_NOT_SUCCEED = {StepState.FAILED: "failed", StepState.SKIPPED: "was skipped"}


class RunPlan:
    def __init__(self, steps: Sequence[StepSpec]) -> None:
        self._needs = {step.name: list(step.needs) for step in steps}
        self.states = {step.name: StepState.PENDING for step in steps}

    def ready(self) -> list[str]:
        """Pending steps whose every need succeeded."""
        return [
            name
            for name, state in self.states.items()
            if state is StepState.PENDING
            and all(self.states[need] is StepState.SUCCEEDED for need in self._needs[name])
        ]

    def start(self, name: str) -> None:
        self._move(name, StepState.PENDING, StepState.RUNNING)

    def finish(self, name: str, succeeded: bool) -> None:
        self._move(name, StepState.RUNNING, StepState.SUCCEEDED if succeeded else StepState.FAILED)

    def skip_blocked(self) -> list[tuple[str, str]]:
        """Mark skipped every pending step with a need that did not succeed, transitively.

        Returns (step, reason) for each newly skipped step, in workflow order.
        """
        skipped: list[tuple[str, str]] = []
        changed = True
        while changed:
            changed = False
            for name, state in self.states.items():
                if state is not StepState.PENDING:
                    continue
                blocker = next(
                    (n for n in self._needs[name] if self.states[n] in _DID_NOT_SUCCEED), None
                )
                if blocker is not None:
                    self.states[name] = StepState.SKIPPED
                    why = _DID_NOT_SUCCEED[self.states[blocker]]
                    skipped.append((name, f"needs {blocker!r}, which {why}"))
                    changed = True
        return skipped

    @property
    def finished(self) -> bool:
        return all(s not in (StepState.PENDING, StepState.RUNNING) for s in self.states.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state is StepState.FAILED]

    def _move(self, name: str, expected: StepState, to: StepState) -> None:
        if self.states[name] is not expected:
            raise ValueError(f"step {name!r} is {self.states[name]}, not {expected}")
        self.states[name] = to
