"""The interface both step runners implement.

A runner runs one step to its end and reports output as it comes. It does not publish,
scrub or time out: the caller does that the same way for every runner, and cancels
``run`` on timeout, so a runner must stop its process when cancelled.
"""

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiop.contracts import StepSpec

# (stream, text): stream is "stdout" or "stderr"; text is one or more whole lines.
OutputSink = Callable[[str, str], Awaitable[None]]

# The capabilities the workflow whose step is running requires (WorkflowSpec.requires):
# set by the executor in each run's context, so a runner that could fall back to another
# (adapters/fallback.py) knows when it must not.
REQUIRED_CAPABILITIES: ContextVar[frozenset[str]] = ContextVar(
    "aiop_required_capabilities", default=frozenset()
)


@dataclass(frozen=True)
class StepResult:
    """How a step ended. ``exit_code`` is None when the step never ran to an exit."""

    exit_code: int | None
    error: str | None = None
    timed_out: bool = False
    runner: str | None = None  # which ran it ("dagger", "local" or "agent"); None: none did
    agent_id: str | None = None  # runner "agent": the agent that ended it

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.error is None


class Runner(Protocol):
    @property
    def name(self) -> str:
        """ "local" or "dagger": the runner steps get now, as reported in
        WorkflowStarted.runner."""
        ...

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult: ...

    async def close(self) -> None: ...
