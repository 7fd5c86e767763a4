"""A step's StepStarted is published while its process starts, yet stored before the
step's other events: a slow publish must hold those back, not reorder them."""

import asyncio
import sys
import time
from pathlib import Path

from aiop.contracts import Event, StepSpec, WorkflowRequested, WorkflowSpec
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.run import RunContext, WorkflowRun


class SlowStartPublisher:
    """Stores events in call order; StepStarted takes ``delay`` to be stored."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.stored: list[str] = []
        self.started_stored_at = 0.0

    async def publish(self, event: Event) -> None:
        if event.TYPE == "aiop.step.started.v1":
            await asyncio.sleep(self.delay)  # a slow broker, not a wait for an event
            self.started_stored_at = time.time()
        self.stored.append(event.TYPE)


async def test_step_started_is_stored_before_the_steps_output_and_end(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    step = StepSpec(
        name="quick",
        run=[sys.executable, "-c", f"open({str(marker)!r}, 'w'); print('hello')"],
    )
    request = WorkflowRequested(
        workflow_id="wf1", pool="p", attempt=1, spec=WorkflowSpec(name="w", steps=[step])
    )
    publisher = SlowStartPublisher(delay=1.0)
    ctx = RunContext(
        executor_id="e1",
        runner=LocalRunner(),
        publisher=publisher,  # type: ignore[arg-type]
        work_dir=tmp_path / "work",
    )
    await asyncio.wait_for(WorkflowRun(request, ctx).run(), 10)
    # The process ran while StepStarted was still on its way.
    assert marker.stat().st_mtime < publisher.started_stored_at
    assert publisher.stored == [
        "aiop.step.started.v1",
        "aiop.output.appended.v1",
        "aiop.step.completed.v1",
        "aiop.workflow.completed.v1",
    ]
