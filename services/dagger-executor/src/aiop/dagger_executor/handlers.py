"""The executor's handler and state: its free slots, the runs it holds, its heartbeat.

A request is taken only with a free slot and a won claim. The handler returns (and the
request is acked) once WorkflowStarted is stored and the run is under way; the run
itself outlives the delivery, which is why the claim, not the ack, guards against
running an attempt twice.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.js import JetStreamContext

from aiop.contracts import ExecutorHeartbeat, WorkflowRequested, WorkflowStarted
from aiop.dagger_executor.adapters.claims import Claim, Claims
from aiop.dagger_executor.domain.naming import claim_key
from aiop.dagger_executor.run import RunContext, WorkflowRun
from aiop.servicekit import EventBus

log = logging.getLogger("aiop.dagger_executor")

# How long a full executor holds a request before handing it back (NAK) so that an
# executor with room can take it.
SLOT_WAIT = 5.0


class NoFreeSlot(Exception):
    """Every slot is busy; the request is NAKed and redelivered, maybe elsewhere."""


@dataclass(frozen=True)
class Identity:
    executor_id: str
    pool: str
    capabilities: list[str]
    slots: int
    heartbeat_interval_s: float


class Executor:
    def __init__(
        self,
        identity: Identity,
        bus: EventBus,
        ctx: RunContext,
        jetstream: Callable[[], JetStreamContext],
        replicas: int = 1,
    ) -> None:
        self.identity = identity
        self.bus = bus
        self.ctx = ctx
        self._jetstream = jetstream
        self._replicas = replicas
        self._claims: Claims | None = None
        self._slots = asyncio.Semaphore(identity.slots)
        self.running: dict[str, tuple[str, asyncio.Task[None]]] = {}  # claim key -> (wf, run)
        self._heartbeat: asyncio.Task[None] | None = None
        self._done: set[str] = set()  # claim keys this process ran to the end

    async def start(self) -> None:
        self._claims = Claims(self._jetstream(), self.identity.executor_id, self._replicas)
        await self._claims.bucket()
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        tasks = [task for _, task in self.running.values()]
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.ctx.runner.close()

    async def on_requested(self, event: WorkflowRequested) -> None:
        key = claim_key(event.workflow_id, event.attempt)
        if key in self.running:
            return  # a redelivery of a request this executor is running
        try:
            await asyncio.wait_for(self._slots.acquire(), SLOT_WAIT)
        except TimeoutError:
            raise NoFreeSlot(f"all {self.identity.slots} slots busy") from None
        try:
            await self._take(event, key)
        except BaseException:
            if key not in self.running:
                self._slots.release()
            raise

    async def _take(self, event: WorkflowRequested, key: str) -> None:
        if self._claims is None:
            self._claims = Claims(self._jetstream(), self.identity.executor_id, self._replicas)
        claim = await self._claims.claim(key)
        if claim is Claim.TAKEN:
            log.info("%s is claimed by another executor; leaving it", key)
            self._slots.release()
            return
        if claim is Claim.OURS and key in self._done:
            self._slots.release()  # a late redelivery of an attempt already run here
            return
        # A fixed event id: if this publish fails and the request comes back (claim OURS),
        # the retry is the same event and the server keeps one.
        started = WorkflowStarted(
            event_id=f"started-{key.replace('.', '-')}",
            workflow_id=event.workflow_id,
            attempt=event.attempt,
            executor_id=self.identity.executor_id,
            runner=self.ctx.runner.name,
        )
        await self.bus.publish(started)
        task = asyncio.create_task(WorkflowRun(event, self.ctx).run(), name=f"run {key}")
        self.running[key] = (event.workflow_id, task)
        task.add_done_callback(lambda _: self._finished(key))
        log.info("running %s with the %s runner", key, self.ctx.runner.name)

    def _finished(self, key: str) -> None:
        self.running.pop(key, None)
        self._done.add(key)
        self._slots.release()

    async def _beat(self) -> None:
        ident = self.identity
        while True:
            beat = ExecutorHeartbeat(
                executor_id=ident.executor_id,
                pool=ident.pool,
                capabilities=ident.capabilities,
                slots=ident.slots - len(self.running),
                running=sorted({wf for wf, _ in self.running.values()}),
                interval_s=ident.heartbeat_interval_s,
            )
            with contextlib.suppress(Exception):  # a missed beat is made up by the next one
                await self.bus.publish(beat)
            await asyncio.sleep(ident.heartbeat_interval_s)
