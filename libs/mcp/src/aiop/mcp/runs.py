"""Waiting for a run to end, telling the caller how far it got on the way."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiop.client import AsyncClient
from aiop.contracts.states import FINAL_STEP_STATES, TERMINAL_WORKFLOW_STATES

# A run of quick steps ends within a few tenths of a second; one that does not is asked
# about less and less often, at most this far apart.
FIRST_POLL_S = 0.05
MAX_POLL_S = 1.0


@dataclass(frozen=True)
class Progress:
    state: str
    done: int  # steps in a final state: succeeded, failed, skipped, cached, ...
    total: int  # 0 until the run's steps are known
    running: tuple[str, ...]

    @classmethod
    def of(cls, view: Mapping[str, Any]) -> "Progress":
        steps = view.get("steps") or []
        return cls(
            state=str(view["state"]),
            done=sum(1 for step in steps if step["state"] in FINAL_STEP_STATES),
            total=len(steps),
            running=tuple(step["name"] for step in steps if step["state"] == "running"),
        )

    @property
    def message(self) -> str:
        text = f"{self.state}: {self.done} of {self.total} steps done"
        return text + (f", {', '.join(self.running)} running" if self.running else "")


Report = Callable[[Progress], Awaitable[None]]


async def until_ended(
    client: AsyncClient, workflow_id: str, timeout: float, report: Report
) -> Mapping[str, Any]:
    """The run once it has ended, or as it is after ``timeout`` seconds; ``report`` hears
    of every change of its state or of its steps done on the way, the last one too."""
    deadline = time.monotonic() + timeout
    delay = FIRST_POLL_S
    last: Progress | None = None
    while True:
        view = await client.status(workflow_id)
        progress = Progress.of(view)
        if progress != last:
            await report(progress)
            last = progress
        left = deadline - time.monotonic()
        if view["state"] in TERMINAL_WORKFLOW_STATES or left <= 0:
            return view
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, MAX_POLL_S)
