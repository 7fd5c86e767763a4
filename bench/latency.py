"""End-to-end latency of a one-step no-op workflow on an idle platform.

Timestamps are taken in this process: ``submit`` just before the HTTP POST, ``started``
and ``completed`` when the workflow's events arrive on a core NATS subscription.
"""

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import yaml

from bench.platform import Platform
from bench.stats import summary

NOOP = yaml.safe_load((Path(__file__).parents[1] / "examples" / "noop.yaml").read_text())
TERMINAL = ("aiop.workflow.completed.v1", "aiop.workflow.failed.v1")


@dataclass
class Watch:
    """Arrival times of each workflow's started and terminal events."""

    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    waiters: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    async def attach(self, nc: nats.NATS) -> None:
        async def on_event(msg: nats.aio.msg.Msg) -> None:
            now = time.perf_counter()
            stem, workflow_id = msg.subject.rsplit(".", 1)
            if stem == "aiop.workflow.started.v1":
                self.started.setdefault(workflow_id, now)
                return
            self.finished.setdefault(workflow_id, now)
            if stem == "aiop.workflow.failed.v1":
                self.failed.add(workflow_id)
            waiter = self.waiters.pop(workflow_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        for subject in ("aiop.workflow.started.v1.*", *(f"{t}.*" for t in TERMINAL)):
            await nc.subscribe(subject, cb=on_event)
        await nc.flush()

    def waiter(self, workflow_id: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        if workflow_id in self.finished:
            future.set_result(None)
        else:
            self.waiters[workflow_id] = future
        return future


async def submit(http: httpx.AsyncClient, spec: dict[str, object]) -> str:
    reply = await http.post("/v1/workflows", json=spec)
    reply.raise_for_status()
    return str(reply.json()["workflow_id"])


async def measure(platform: Platform, count: int = 300, warmup: int = 30) -> dict[str, object]:
    nc = await platform.connect()
    watch = Watch()
    await watch.attach(nc)
    to_started: list[float] = []
    to_completed: list[float] = []
    async with httpx.AsyncClient(
        base_url=platform.gateway_url, headers=platform.headers(), timeout=30
    ) as http:
        for i in range(warmup + count):
            began = time.perf_counter()
            workflow_id = await submit(http, NOOP)
            await asyncio.wait_for(watch.waiter(workflow_id), 30)
            if i < warmup:
                continue
            to_started.append((watch.started[workflow_id] - began) * 1000)
            to_completed.append((watch.finished[workflow_id] - began) * 1000)
    await nc.close()
    return {
        "workflows": count,
        "failed": len(watch.failed),
        "submit_to_started_ms": summary(to_started),
        "submit_to_completed_ms": summary(to_completed),
    }


async def one(platform: Platform) -> str:
    """Submit one no-op workflow and wait for it to finish; its id."""
    nc = await platform.connect()
    watch = Watch()
    await watch.attach(nc)
    async with httpx.AsyncClient(
        base_url=platform.gateway_url, headers=platform.headers(), timeout=30
    ) as http:
        workflow_id = await submit(http, NOOP)
        await asyncio.wait_for(watch.waiter(workflow_id), 30)
    await nc.close()
    return workflow_id
