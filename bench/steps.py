"""The executor's own cost per step, beside what it wraps, in the same run.

- Per-step overhead: a one-step workflow run by the executor's WorkflowRun with the local
  runner (plan, output capture, events, isolation as this host gives it), against a
  bare ``asyncio.create_subprocess_exec`` of the same command, waited for.
- A cache hit: a one-step workflow whose result is in the step cache, against the same
  step run for real. The cache is JetStream's (KV and Object Store) on the bench's
  nats-server; events go to memory, so what is timed is the lookup and the restore.
"""

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from aiop.contracts import Event, StepSpec, WorkflowRequested, WorkflowSpec
from aiop.dagger_executor.adapters.artifacts import CacheLimits, StepStore
from aiop.dagger_executor.adapters.isolation import choose
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.run import RunContext, WorkflowRun
from bench.stats import summary

COMMAND = [shutil.which("true") or "/bin/true"]


class Sink:
    """The executor's publisher, in memory: only the executor's own work is timed."""

    async def publish(self, event: Event) -> None:
        return None


async def _bare(count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(*COMMAND)
        await proc.wait()
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def _runs(ctx: RunContext, step: StepSpec, count: int, prefix: str) -> list[float]:
    times = []
    for i in range(count):
        request = WorkflowRequested(
            workflow_id=f"{prefix}{i}", pool="bench", spec=WorkflowSpec(name="b", steps=[step])
        )
        t0 = time.perf_counter()
        await WorkflowRun(request, ctx).run()
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def measure(nats_url: str, count: int) -> dict[str, Any]:
    isolation = choose("auto")
    nc = await nats.connect(nats_url)
    store = StepStore(CacheLimits(ttl_s=3600, max_bytes=64 * 1024**2))
    await store.open(nc.jetstream())
    work = Path(tempfile.mkdtemp(prefix="aiop-bench-steps-"))
    try:
        runner = LocalRunner(isolation, cache_root=work / "caches")
        plain = RunContext("bench", runner, Sink(), work, {})  # type: ignore[arg-type]
        cached = RunContext("bench", runner, Sink(), work, {}, store=store)  # type: ignore[arg-type]
        await _bare(5)
        bare = await _bare(count)
        uncached = StepSpec(name="s", run=COMMAND, cache=False)
        await _runs(plain, uncached, 5, "warm")
        stepped = await _runs(plain, uncached, count, "run")
        # The same without isolation: what the uid and namespace per step cost.
        bare_ctx = RunContext("bench", LocalRunner(choose("off")), Sink(), work, {})  # type: ignore[arg-type]
        unisolated = await _runs(bare_ctx, uncached, count, "off")
        # One run fills the cache; every later one is a hit. With outputs, a hit also
        # fetches and unpacks an archive.
        hit = StepSpec(name="hit", run=COMMAND)
        with_outputs = StepSpec(name="out", run=["sh", "-c", "echo built > app.txt"],
                                outputs=["app.txt"])  # fmt: skip
        await _runs(cached, hit, 1, "fill")
        await _runs(cached, with_outputs, 1, "fillout")
        hits = await _runs(cached, hit, count, "hit")
        output_hits = await _runs(cached, with_outputs, count, "hitout")
        await runner.close()  # its step launcher
    finally:
        await nc.close()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "isolation": isolation.summary(),
        "bare_spawn_ms": summary(bare),
        "local_step_ms": summary(stepped),
        "local_step_unisolated_ms": summary(unisolated),
        "cache_hit_ms": summary(hits),
        "cache_hit_with_outputs_ms": summary(output_hits),
    }
