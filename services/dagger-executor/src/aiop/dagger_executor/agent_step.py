"""One try of an agent step: offered to the agents of its capability, under the same
timeout as any try. Its progress becomes ``step.progress`` events and output lines; its
output lands where a container step's summary would, and in ``output.json`` for the
inputs of later steps."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from aiop.contracts import Event, StepSpec, WorkflowRequested
from aiop.contracts.agents import AgentReport, AgentWork, work_id
from aiop.contracts.events import StepProgress
from aiop.dagger_executor.adapters.agent_desk import AgentDesk
from aiop.dagger_executor.adapters.runner import StepResult
from aiop.dagger_executor.step_files import write_agent_output
from aiop.dagger_executor.step_output import StepOutput

Publish = Callable[[Event], Awaitable[None]]


def agent_work(
    req: WorkflowRequested, step: StepSpec, try_number: int, outputs: dict[str, dict[str, Any]]
) -> AgentWork:
    """The offer of one try: its input, and the JSON output of each step it needs."""
    wf, attempt = req.workflow_id, req.attempt
    return AgentWork(
        work_id=work_id(wf, attempt, step.name, try_number), workflow_id=wf, attempt=attempt,
        step=step.name, try_number=try_number, project=req.spec.project,
        capability=step.agent or "", input=step.with_,
        needs={need: outputs.get(need, {}) for need in step.needs},
        timeout_s=step.timeout, principal=req.principal or "",
    )  # fmt: skip


async def offer_try(
    desk: AgentDesk, work: AgentWork, workdir: Path, output: StepOutput, publish: Publish
) -> StepResult:
    async def progress(report: AgentReport) -> None:
        await publish(StepProgress(
            workflow_id=work.workflow_id, attempt=work.attempt, step=work.step,
            try_number=work.try_number, agent_id=report.agent_id or None,
            percent=report.percent, message=report.message, partial=report.partial,
        ))  # fmt: skip
        if report.message or report.percent is not None:
            done = "" if report.percent is None else f" {report.percent:g}%"
            await output.write("stderr", f"[agent{done}] {report.message or ''}\n")

    try:
        async with asyncio.timeout(work.timeout_s):
            ended = await desk.run(work, output.write, progress)
    except TimeoutError:
        if work.timeout_s is None:
            raise
        return StepResult(
            None, f"timed out after {work.timeout_s:g}s; the agent was told to stop",
            timed_out=True, runner="agent",
        )  # fmt: skip
    if ended.error is not None:
        return StepResult(None, f"the agent failed: {ended.error}", runner="agent",
                          agent_id=ended.agent_id)  # fmt: skip
    await asyncio.to_thread(write_agent_output, workdir, msgspec.json.encode(ended.output or {}))
    return StepResult(0, runner="agent", agent_id=ended.agent_id)
