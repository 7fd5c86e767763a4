"""The executor's handler and state: its free slots, the runs it holds, its heartbeat.

A request is taken only with a free slot and a won claim. The handler returns (and the
request is acked) once WorkflowStarted is stored and the run is under way; the run
itself outlives the delivery, which is why the claim, not the ack, guards against
running an attempt twice.

Cancel requests come from the executor's copy of KV ``aiop_cancels``: a run it holds is
stopped when one arrives, and a request it takes later for a cancelled workflow is
ended at once, without starting a step.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext

from aiop.contracts import (
    ExecutorHeartbeat,
    WorkflowCancelled,
    WorkflowRequested,
    WorkflowStarted,
)
from aiop.contracts.cancels import CANCEL_TTL_S, CancelRequest, decode_cancel
from aiop.contracts.events import now
from aiop.contracts.subjects import KV_CANCELS
from aiop.dagger_executor.adapters.artifacts import CacheCounts
from aiop.dagger_executor.adapters.claims import Claim, Claims
from aiop.dagger_executor.adapters.runner import REQUIRED_CAPABILITIES
from aiop.dagger_executor.adapters.selection import EngineStatus
from aiop.dagger_executor.domain.naming import claim_key
from aiop.dagger_executor.run import RunContext, WorkflowRun
from aiop.servicekit import EventBus, KeyMirror, open_bucket
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.dagger_executor")

# How long a full executor holds a request before handing it back (NAK) so that an
# executor with room can take it.
SLOT_WAIT = 5.0


class NoFreeSlot(Exception):
    """Every slot is busy; the request is NAKed and redelivered, maybe elsewhere."""


@dataclass
class Held:
    """A run this executor holds."""

    request: WorkflowRequested
    task: asyncio.Task[None]
    t0: float = field(default_factory=time.monotonic)
    cancelling: bool = False


@dataclass(frozen=True)
class Identity:
    executor_id: str
    pool: str
    capabilities: list[str]
    slots: int
    heartbeat_interval_s: float
    # The capabilities it cannot offer for now (Dagger while its circuit is open): left
    # out of each heartbeat, so that the distributor sends such work elsewhere.
    withheld: Callable[[], frozenset[str]] = frozenset
    runners: list[str] = field(default_factory=lambda: ["local"])  # runner kinds it has
    labels: list[str] = field(default_factory=list)
    engine: Callable[[], EngineStatus] = EngineStatus  # its Dagger engine, as known now
    started_at: datetime = field(default_factory=now)  # since when its counts count


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
        self.running: dict[str, Held] = {}  # by claim key
        self._heartbeat: asyncio.Task[None] | None = None
        self._done: set[str] = set()  # claim keys this process ran to the end
        self._cancels: KeyMirror | None = None
        self._cancelling: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        js = self._jetstream()
        self._claims = Claims(js, self.identity.executor_id, self._replicas)
        await self._claims.bucket()
        kv = await open_bucket(js, KV_CANCELS, replicas=self._replicas, ttl_s=CANCEL_TTL_S)
        self._cancels = KeyMirror(kv, self._on_cancel, CANCEL_TTL_S)
        await self._cancels.open()  # before the first request is taken
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        # Runs stopped here are not cancelled: another executor takes them over.
        tasks = [held.task for held in self.running.values()] + list(self._cancelling)
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
        await cancel_and_wait(tasks)
        if self._cancels is not None:
            await self._cancels.close()
        await self.ctx.janitor.flush()
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
        if (cancel := self._cancel_request(event.workflow_id)) is not None:
            await self._publish_cancelled(event, cancel, 0.0)
            self._done.add(key)
            self._slots.release()
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
        # The runner reads what the workflow requires from the run's context.
        context = contextvars.copy_context()
        context.run(REQUIRED_CAPABILITIES.set, frozenset(event.spec.requires))
        task = asyncio.create_task(
            WorkflowRun(event, self.ctx).run(), name=f"run {key}", context=context
        )
        self.running[key] = Held(event, task)
        task.add_done_callback(lambda _: self._finished(key))
        log.info("running %s with the %s runner", key, self.ctx.runner.name)
        if self._cancel_request(event.workflow_id) is not None:
            self._start_cancel(key)  # it came while WorkflowStarted was being published

    def _finished(self, key: str) -> None:
        self.running.pop(key, None)
        self._done.add(key)
        self._slots.release()

    # -- cancelling ------------------------------------------------------------------

    def _cancel_request(self, workflow_id: str) -> CancelRequest | None:
        raw = self._cancels.get(workflow_id) if self._cancels is not None else None
        return decode_cancel(raw) if raw else None

    def _on_cancel(self, workflow_id: str, _: bytes) -> None:
        for key, held in list(self.running.items()):
            if held.request.workflow_id == workflow_id:
                self._start_cancel(key)

    def _start_cancel(self, key: str) -> None:
        held = self.running.get(key)
        if held is None or held.cancelling:
            return
        held.cancelling = True
        task = asyncio.create_task(self._cancel(held), name=f"cancel {key}")
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _cancel(self, held: Held) -> None:
        """Stop the run (its steps' processes are killed as the run unwinds), then say so,
        unless it ended on its own first and already said how."""
        held.task.cancel()
        await asyncio.gather(held.task, return_exceptions=True)
        cancel = self._cancel_request(held.request.workflow_id)
        if held.task.cancelled() and cancel is not None:
            await self._publish_cancelled(held.request, cancel, time.monotonic() - held.t0)
            log.info("cancelled %s: %s", held.request.workflow_id, cancel.describe())

    async def _publish_cancelled(
        self, request: WorkflowRequested, cancel: CancelRequest, took: float
    ) -> None:
        await self.ctx.publisher.publish(WorkflowCancelled(
            event_id=f"cancelled-{request.workflow_id}-a{request.attempt}",
            workflow_id=request.workflow_id, attempt=request.attempt,
            executor_id=self.identity.executor_id, reason=cancel.describe(),
            cancelled_by=cancel.principal, duration_s=took,
        ))  # fmt: skip

    async def _beat(self) -> None:
        ident = self.identity
        while True:
            withheld = ident.withheld()
            engine = ident.engine()
            counts = self.ctx.store.counts if self.ctx.store is not None else CacheCounts()
            beat = ExecutorHeartbeat(
                executor_id=ident.executor_id,
                pool=ident.pool,
                capabilities=[c for c in ident.capabilities if c not in withheld],
                slots=ident.slots - len(self.running),
                running=sorted({held.request.workflow_id for held in self.running.values()}),
                interval_s=ident.heartbeat_interval_s,
                capacity=self.ctx.slots.capacity,
                load=self.ctx.slots.load,
                runners=[r for r in ident.runners if r not in withheld],
                labels=ident.labels,
                engine_reachable=engine.reachable,
                engine_detail=engine.detail,
                circuits=engine.circuits,
                started_at=ident.started_at,
                cache_hits=counts.hits,
                cache_misses=counts.misses,
                cache_outputs_gone=counts.outputs_gone,
            )
            with contextlib.suppress(Exception):  # a missed beat is made up by the next one
                await self.bus.publish(beat)
            await asyncio.sleep(ident.heartbeat_interval_s)
