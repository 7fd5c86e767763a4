"""One claimed attempt of a workflow, run to its terminal event.

Steps start as soon as every step they need succeeded, so independent steps run
concurrently. A step whose needs did not succeed is skipped. Every event carries the
attempt, and is published until stored, so a NATS hiccup delays a run but never loses
its outcome.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace

from aiop.contracts import (
    Event,
    StepCached,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepSpec,
    StepStarted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
    validate_spec,
)
from aiop.contracts.events import now
from aiop.dagger_executor.adapters.agent_desk import AgentDesk
from aiop.dagger_executor.adapters.api_access import API_TOKEN, ApiAccess, NoApiAccess
from aiop.dagger_executor.adapters.artifacts import MissingOutput, StepStore
from aiop.dagger_executor.adapters.publisher import RetryingPublisher
from aiop.dagger_executor.adapters.runner import Runner, StepResult
from aiop.dagger_executor.agent_step import agent_work, offer_try
from aiop.dagger_executor.domain.plan import RunPlan
from aiop.dagger_executor.domain.retry import ONE_TRY, retry_delay
from aiop.dagger_executor.domain.scrub import Scrubber
from aiop.dagger_executor.domain.secrets import Lookup, resolve_stored_secrets
from aiop.dagger_executor.domain.summary import (
    SUMMARY_FILE,
    SummaryIgnored,
    parse_summary,
    scrub_summary,
)
from aiop.dagger_executor.results import Kept, RunResults
from aiop.dagger_executor.step_files import read_summary, write_files
from aiop.dagger_executor.step_output import StepOutput
from aiop.dagger_executor.step_slots import StepSlots
from aiop.dagger_executor.work_janitor import WorkJanitor

log = logging.getLogger("aiop.dagger_executor.run")
tracer = trace.get_tracer("aiop.dagger_executor")


@dataclass(frozen=True)
class RunContext:
    """What every run of this executor shares."""

    executor_id: str
    runner: Runner
    publisher: RetryingPublisher
    work_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    lookup: Lookup | None = None  # stored secrets (KV aiop_secrets), before ``environ``
    store: StepStore | None = None  # the step cache and outputs; None: no cache, no outputs
    slots: StepSlots = field(default_factory=lambda: StepSlots(64))  # steps at once
    janitor: WorkJanitor = field(default_factory=WorkJanitor)  # finished runs' directories
    api: ApiAccess | None = None  # tokens for steps that call the API; None: none given
    agents: AgentDesk | None = None  # where agent steps are offered; None: they fail


class WorkflowRun:
    def __init__(self, request: WorkflowRequested, ctx: RunContext) -> None:
        self.request = request
        self.ctx = ctx
        self.wf, self.attempt = request.workflow_id, request.attempt
        self.errors: dict[str, str] = {}  # step -> why it failed, for WorkflowFailed.reason
        self.results = RunResults(request, ctx.store)
        self.outputs: dict[str, dict[str, Any]] = {}  # step -> its JSON output (summary)
        self._t0 = time.monotonic()

    async def run(self) -> None:
        req = self.request
        with tracer.start_as_current_span(f"run {req.spec.name}") as span:
            span.set_attribute("aiop.workflow_id", req.workflow_id)
            span.set_attribute("aiop.attempt", req.attempt)
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must still end the workflow, not strand it
                log.exception("run of %s failed", req.workflow_id)
                await self._failed(f"executor error: {type(exc).__name__}: {exc}", None)
            self.ctx.janitor.finished(self.ctx.work_dir / self.wf / str(self.attempt))

    async def _run(self) -> None:
        problems = validate_spec(self.request.spec)
        if problems:
            await self._failed("invalid workflow: " + "; ".join(problems), None)
            return
        plan = RunPlan(self.request.spec.steps)
        specs = {step.name: step for step in self.request.spec.steps}
        tasks: dict[asyncio.Task[bool], str] = {}
        try:
            while True:
                for name, reason in plan.skip_blocked():
                    await self._publish(
                        StepSkipped(
                            workflow_id=self.wf, attempt=self.attempt, step=name, reason=reason
                        )
                    )
                for name in plan.ready():
                    plan.start(name)
                    tasks[asyncio.create_task(self._step(specs[name]))] = name
                if not tasks:
                    break
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    plan.finish(tasks.pop(task), task.result())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if plan.failed:
            first = plan.failed[0]
            await self._failed(f"step {first!r} failed: {self.errors[first]}", first)
        else:
            await self._publish(
                WorkflowCompleted(
                    workflow_id=self.wf,
                    attempt=self.attempt,
                    executor_id=self.ctx.executor_id,
                    duration_s=self._elapsed(),
                )
            )

    async def _step(self, step: StepSpec) -> bool:
        """Run one step, retried per its policy, and publish how it went; True when it
        succeeded."""
        with tracer.start_as_current_span(f"step {step.name}"):
            key = self.results.key(step)
            if await self._reused(step, key, time.monotonic()):
                return True
            async with self.ctx.slots.hold():
                return await self._run_step(step, key)

    async def _run_step(self, step: StepSpec, key: str) -> bool:
        """Run ``step`` (it holds a step slot) and publish how it went."""
        started_at, t0 = now(), time.monotonic()
        # Read now, before anything runs that a cancel while reading would leave behind.
        auth = step.registry_auth
        # The registry's password too, for the pull (runners keep it out of the env).
        names = list(dict.fromkeys([*step.secrets, *([auth.secret] if auth else [])]))
        secrets, missing = await resolve_stored_secrets(
            names, self.request.spec.project, self.ctx.environ, self.ctx.lookup
        )
        if step.api:
            missing += await self._api_token(step, secrets)
        # Announced while the process starts, not before: the step's other events
        # wait for this one, so it is still stored first.
        announced = asyncio.create_task(
            self._publish(StepStarted(workflow_id=self.wf, attempt=self.attempt, step=step.name))
        )

        async def after_announced(event: Event) -> None:
            await announced
            await self._publish(event)

        scrub = Scrubber(secrets.values())
        output = StepOutput(
            after_announced, workflow_id=self.request.workflow_id, step=step.name,
            attempt=self.request.attempt, scrub=scrub,
        )  # fmt: skip
        try:
            if missing:
                result = StepResult(None, "secrets not available: " + "; ".join(missing))
                tries = 1
            else:
                result, tries = await self._tries(step, secrets, output, after_announced)
            summary = await self._summary(step, output) if result.succeeded else {}
            await output.close()
            await announced
        finally:
            announced.cancel()  # a no-op once done; else this step is being cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await output.close()
        took = time.monotonic() - t0
        if result.succeeded:
            kept, problem = await self._keep(step, key, took, summary)
            if problem:
                result = StepResult(0, problem, runner=result.runner)
        if result.succeeded:
            self.outputs[step.name] = summary
            await self._publish(
                StepCompleted(
                    workflow_id=self.wf,
                    attempt=self.attempt,
                    step=step.name,
                    started_at=started_at,
                    duration_s=took,
                    tries=tries,
                    cache_key=key or None,
                    outputs_digest=kept.outputs_digest,
                    outputs_size=kept.outputs_size,
                    runner=result.runner,
                    agent_id=result.agent_id,
                    summary=summary,
                    entry_key=kept.entry_key,
                )
            )
            return True
        error = scrub(result.error or f"exited with code {result.exit_code}")
        self.errors[step.name] = error
        await self._publish(
            StepFailed(
                workflow_id=self.wf,
                attempt=self.attempt,
                step=step.name,
                exit_code=result.exit_code,
                error=error,
                output_tail=output.tail(),
                started_at=started_at,
                duration_s=took,
                tries=tries,
                timed_out=result.timed_out,
                runner=result.runner,
            )
        )
        return False

    async def _api_token(self, step: StepSpec, secrets: dict[str, str]) -> list[str]:
        """Put the step's API token among its secrets; why not, if it cannot have one."""
        if self.ctx.api is None:
            return ["the step calls the API, and this executor was not given its address"]
        req = self.request
        try:
            secrets[API_TOKEN] = await self.ctx.api.token(
                req.principal, req.spec.project, req.workflow_id, step.timeout
            )
        except NoApiAccess as exc:
            return [str(exc)]
        return []

    def _workdir(self, step: StepSpec) -> Path:
        return self.ctx.work_dir / self.wf / str(self.attempt) / step.name

    async def _reused(self, step: StepSpec, key: str, t0: float) -> bool:
        """Whether the cache (or an earlier attempt) gave ``step`` its result; if so it
        is announced as cached and does not run."""
        reused = await self.results.reuse(step, key, self._workdir(step))
        if reused is None:
            return False
        entry = reused.entry
        self.outputs[step.name] = entry.summary
        await self._publish(
            StepCached(
                workflow_id=self.wf,
                attempt=self.attempt,
                step=step.name,
                cache_key=entry.key or entry.result,
                source=reused.source,
                entry_key=reused.entry_key,
                from_workflow_id=entry.workflow_id,
                from_attempt=entry.attempt,
                outputs_digest=entry.outputs_digest,
                outputs_size=entry.outputs_size,
                duration_s=time.monotonic() - t0,
                summary=entry.summary,
            )
        )
        return True

    async def _summary(self, step: StepSpec, output: StepOutput) -> dict[str, Any]:
        """The summary the step that succeeded left, scrubbed; {} when it left none, or
        one that is ignored (its output then says why)."""
        try:
            # At most 64 KiB of a local file, usually none: no worker thread for that.
            raw = read_summary(self._workdir(step))
            return {} if raw is None else scrub_summary(parse_summary(raw), output.scrub)
        except SummaryIgnored as exc:
            await output.write("stderr", f"[aiop] the step's summary was ignored: {exc}\n")
            return {}

    async def _keep(
        self, step: StepSpec, key: str, took: float, summary: dict[str, Any]
    ) -> tuple[Kept, str | None]:
        """Store what a step that succeeded produced; why that failed, if it did (then
        the step has failed)."""
        try:
            workdir = self._workdir(step)
            return await self.results.keep(step, key, workdir, took, summary), None
        except MissingOutput as exc:
            return Kept(), f"it succeeded but did not produce output {exc}"
        except Exception as exc:
            log.exception("storing the outputs of %s failed", step.name)
            return Kept(), f"its outputs could not be stored: {exc!r}"

    async def _tries(
        self,
        step: StepSpec,
        secrets: dict[str, str],
        output: StepOutput,
        publish: Callable[[Event], Awaitable[None]],
    ) -> tuple[StepResult, int]:
        """Run ``step`` until a try succeeds or its policy allows no more; the last
        result and how many tries that took. Each failed try but the last is announced
        with StepRetrying, and waits out its backoff."""
        policy = step.retries or ONE_TRY
        failed_try = 0
        while True:
            result = await self._execute(step, secrets, output, failed_try + 1, publish)
            failed_try += 1
            if result.succeeded or failed_try >= policy.attempts:
                return result, failed_try
            delay = retry_delay(policy, failed_try)
            error = output.scrub(result.error or f"exited with code {result.exit_code}")
            await output.write(
                "stderr",
                f"[aiop] try {failed_try} of {policy.attempts} failed: {error};"
                f" next try in {delay:.2f}s\n",
            )
            retrying = StepRetrying(
                workflow_id=self.wf, attempt=self.attempt, step=step.name,
                try_number=failed_try, exit_code=result.exit_code, error=error,
                delay_s=delay, timed_out=result.timed_out, output_tail=output.tail(),
            )  # fmt: skip
            await output.next_try(failed_try + 1)
            await publish(retrying)
            await asyncio.sleep(delay)

    async def _execute(
        self,
        step: StepSpec,
        secrets: dict[str, str],
        output: StepOutput,
        try_number: int,
        publish: Callable[[Event], Awaitable[None]],
    ) -> StepResult:
        req = self.request
        workdir = self._workdir(step)
        if try_number > 1:
            # Every try starts from an empty work directory, as a fresh container would.
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        if step.agent is not None:
            if self.ctx.agents is None:
                return StepResult(None, "this executor cannot offer steps to agents")
            work = agent_work(req, step, try_number, self.outputs)
            return await offer_try(self.ctx.agents, work, workdir, output, publish)
        if step.inputs and (missing := await self.results.put_inputs(step, workdir)):
            return StepResult(None, missing)
        if step.files:  # after the inputs: a file may add to (or replace one in) them
            try:
                await asyncio.to_thread(write_files, workdir, step.files)
            except OSError as exc:
                return StepResult(None, f"its files could not be written: {exc}")
        env = {
            **step.env,
            "AIOP_WORKFLOW_ID": req.workflow_id,
            "AIOP_STEP": step.name,
            "AIOP_ATTEMPT": str(req.attempt),
            "AIOP_TRY": str(try_number),
            # Absolute: the step may change directory. The Dagger runner maps it to /work.
            "AIOP_SUMMARY": str(workdir.absolute() / SUMMARY_FILE),
        }
        if step.api and self.ctx.api is not None:
            env["AIOP_URL"] = self.ctx.api.url
        try:
            async with asyncio.timeout(step.timeout):
                return await self.ctx.runner.run(step, workdir, env, secrets, output.write)
        except TimeoutError:
            if step.timeout is None:
                raise
            return StepResult(
                None, f"timed out after {step.timeout:g}s; the step was killed", timed_out=True
            )
        except Exception as exc:
            log.exception("runner %s failed on step %s", self.ctx.runner.name, step.name)
            return StepResult(None, f"{self.ctx.runner.name} runner error: {exc!r}")

    async def _failed(self, reason: str, failed_step: str | None) -> None:
        await self._publish(
            WorkflowFailed(
                workflow_id=self.wf,
                attempt=self.attempt,
                executor_id=self.ctx.executor_id,
                reason=reason,
                failed_step=failed_step,
                duration_s=self._elapsed(),
            )
        )

    async def _publish(self, event: Event) -> None:
        await self.ctx.publisher.publish(event)

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0
