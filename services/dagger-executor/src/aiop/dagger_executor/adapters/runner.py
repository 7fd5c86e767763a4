"""The interface both step runners implement.

A runner runs one step to its end and reports output as it comes. It does not publish,
scrub or time out: the caller does that the same way for every runner, and cancels
``run`` on timeout, so a runner must stop its process when cancelled.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiop.contracts import StepSpec

# (stream, text): stream is "stdout" or "stderr"; text is one or more whole lines.
OutputSink = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class StepResult:
    """How a step ended. ``exit_code`` is None when the step never ran to an exit."""

    exit_code: int | None
    error: str | None = None
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.error is None


class Runner(Protocol):
    name: str  # "local" or "dagger", as reported in WorkflowStarted.runner

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult: ...

    async def close(self) -> None: ...
