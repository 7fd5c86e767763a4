"""Workflows run through the real local runner, their events collected in memory."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from aiop.contracts import Event, StepOutputAppended, StepSpec, WorkflowRequested, WorkflowSpec
from aiop.dagger_executor.adapters.artifacts import StepStore
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import Runner
from aiop.dagger_executor.domain.secrets import Lookup
from aiop.dagger_executor.main import ExecutorSettings, build
from aiop.dagger_executor.run import RunContext, WorkflowRun
from aiop.dagger_executor.step_slots import StepSlots
from aiop.servicekit.rpc import wait_ready


class Collected:
    """Stands in for the retrying publisher."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def output(self, step: str) -> str:
        return "".join(
            e.text for e in self.events if isinstance(e, StepOutputAppended) and e.step == step
        )


RunSteps = Callable[..., Awaitable[Collected]]


@pytest.fixture
def run_steps(tmp_path: Path) -> RunSteps:
    """``await run_steps(*steps, environ=..., lookup=..., slots=...)`` runs a workflow of ``steps``
    (project ``default``) as attempt 2 of workflow ``wf1`` (or ``workflow_id``), with work
    directories under ``tmp_path``; ``lookup`` finds stored secrets, ``store`` is the step
    cache (none by default), ``runner`` a local runner without isolation unless given."""

    async def run(
        *steps: StepSpec,
        environ: dict[str, str] | None = None,
        lookup: Lookup | None = None,
        slots: StepSlots | None = None,
        store: StepStore | None = None,
        workflow_id: str = "wf1",
        runner: Runner | None = None,
    ) -> Collected:
        sink = Collected()
        ctx = RunContext("ex-1", runner or LocalRunner(), sink, tmp_path, environ or {},  # type: ignore[arg-type]
                         lookup, store, slots=slots or StepSlots(64))  # fmt: skip
        spec = WorkflowSpec(name="t", steps=list(steps))
        await WorkflowRun(WorkflowRequested(workflow_id=workflow_id, pool="default", attempt=2,
                                            spec=spec), ctx).run()  # fmt: skip
        return sink

    return run


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.fixture
async def executor(nats_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    settings = ExecutorSettings(
        nats_url=nats_url,
        work_dir=tmp_path / "work",
        runner="local",
        heartbeat_interval_s=0.2,
        labels=["gpu"],
        step_isolation="off",  # steps run this test's own interpreter, wherever it lives
    )
    app = build(settings)
    task = asyncio.create_task(app.run())
    nc = await nats.connect(nats_url)
    try:
        await wait_ready(nc, "dagger-executor", timeout=15)
        yield nc
    finally:
        app.exit()
        await asyncio.wait_for(task, 15)
        await nc.close()
