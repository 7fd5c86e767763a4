"""The distributor's state and its dispatch loop.

One loop makes every dispatch and resend decision, and a lock serialises it with the
handlers, so a workflow finishing mid-decision cannot be revived by a late KV write.
Order of effects: dispatch state is written to KV before a WorkflowRequested goes out
(a crash in between is repaired at startup by republishing unclaimed requests), and a
WorkflowQueued goes out before its reason is recorded (a crash repeats it, deduplicated).
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry import propagate

from aiop.contracts import (
    ExecutorHeartbeat,
    WorkflowCancelled,
    WorkflowQueued,
    WorkflowRequested,
    WorkflowSpec,
)
from aiop.contracts.cancels import CANCEL_TTL_S, CancelRequest, decode_cancel
from aiop.contracts.subjects import KV_CANCELS
from aiop.distributor.adapters.kv import ClaimFeed, DispatchStore
from aiop.distributor.domain.dispatch import (
    Claim,
    DispatchState,
    Queue,
    Send,
    cancel_step,
    claimant_dead,
    next_action,
)
from aiop.distributor.domain.registry import Registry
from aiop.servicekit import EventBus, KeyMirror, open_bucket
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.distributor")

FORGET_AFTER_S = 600.0  # keep dead executors and stray claims this long, then drop them


class Distributor:
    def __init__(
        self,
        bus: EventBus,
        connection: Callable[[], Client],
        heartbeat_interval_s: float,
        tick_s: float = 0.25,
        replicas: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.connection = connection  # a getter: the service connects after wiring
        self.interval = heartbeat_interval_s
        self.tick = tick_s
        self.replicas = replicas
        self.clock = clock
        self.registry = Registry()
        self.table: dict[str, DispatchState] = {}
        self.claims: dict[tuple[str, int], Claim] = {}
        self._unpublished: set[str] = set()  # dispatched in KV, request not yet on the bus
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._settled_at = float("inf")

    async def start(self, js: JetStreamContext) -> None:
        self.store = await DispatchStore.open(js, self.replicas)
        self.table = await self.store.load_all()
        self.feed = await ClaimFeed.open(js, self.replicas)
        cancels = await open_bucket(js, KV_CANCELS, replicas=self.replicas, ttl_s=CANCEL_TTL_S)
        self.cancels = KeyMirror(cancels, lambda *_: self._wake.set(), CANCEL_TTL_S)
        await self.cancels.open()
        for workflow_id, attempt, executor_id in await self.feed.initial():
            self._on_claim(workflow_id, attempt, executor_id)
        # A request may have been lost between its KV write and its publish; executors
        # claim by key, so republishing a request that did go out runs nothing twice.
        self._unpublished = {
            wf
            for wf, d in self.table.items()
            if d.state == "dispatched" and (wf, d.attempt) not in self.claims
        }
        # Executors announce themselves within an interval; until then no heartbeat
        # does not mean no executor.
        self._settled_at = self.clock() + 1.5 * self.interval
        log.info("loaded %d workflows, %d claims", len(self.table), len(self.claims))
        self._loaded.set()
        self._tasks = [
            asyncio.create_task(self._watch_claims()),
            asyncio.create_task(self._loop()),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if hasattr(self, "feed"):
            await self.feed.stop()
        if hasattr(self, "cancels"):
            await self.cancels.close()

    # -- inputs ---------------------------------------------------------------

    def heartbeat(self, hb: ExecutorHeartbeat) -> None:
        if self.registry.observe(hb, self.clock()):
            self._wake.set()  # new capacity: dispatch pending work now, not next tick

    async def accepted(
        self, workflow_id: str, spec: WorkflowSpec, principal: str | None = None
    ) -> None:
        await self._loaded.wait()
        async with self._lock:
            if workflow_id in self.table:
                return  # redelivery: the stored state is newer than this event
            if (cancel := self._cancel_request(workflow_id)) is not None:
                await self._publish_cancelled(workflow_id, 1, cancel)
                await self.store.finish(workflow_id)  # a redelivery then finds it finished
                return
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            fresh = DispatchState(spec=spec, trace=carrier, principal=principal)
            # A pool that can take it now: the first KV write is already the dispatch,
            # which saves the loop a second write and a wakeup on the critical path.
            now = self.clock()
            action = next_action(fresh, self.registry.live(now), False, now >= self._settled_at)
            if isinstance(action, Send):
                fresh = _dispatched(fresh, action)
            stored = await self.store.create(workflow_id, fresh)
            if stored is None:
                return
            self.table[workflow_id] = stored
            if stored.state == "dispatched":
                # Also the case of a create whose reply was lost, with its request maybe
                # unsent; a republish of the same attempt is dropped as a duplicate.
                self._unpublished.add(workflow_id)
                await self._publish_request(workflow_id, stored)
                return
        self._wake.set()  # queue it, or dispatch it once an executor appears

    async def finished(self, workflow_id: str) -> None:
        await self._loaded.wait()
        async with self._lock:
            await self._drop(workflow_id)

    async def _drop(self, workflow_id: str) -> None:
        await self.store.finish(workflow_id)
        self.table.pop(workflow_id, None)
        self._unpublished.discard(workflow_id)
        for key in [k for k in self.claims if k[0] == workflow_id]:
            del self.claims[key]

    def _on_claim(self, workflow_id: str, attempt: int, executor_id: str | None) -> None:
        if executor_id is None:
            self.claims.pop((workflow_id, attempt), None)
        else:
            self.claims[(workflow_id, attempt)] = Claim(executor_id, self.clock())

    async def _watch_claims(self) -> None:
        async for workflow_id, attempt, executor_id in self.feed.updates():
            self._on_claim(workflow_id, attempt, executor_id)

    # -- decisions ------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if await self._hearing():
                    await self.step()
            except Exception:  # NATS briefly away: the next tick retries from KV state
                log.exception("dispatch step failed")

    async def _hearing(self) -> bool:
        """Whether NATS answers us now. While it does not (restart, SIGSTOP), no heartbeat
        can reach us either, so their silence proves no executor dead: as at startup, wait
        for heartbeats again before resending or queueing anything."""
        # A request, not flush(timeout): a PONG arriving after a flush timed out kills
        # nats-py's read loop (InvalidStateError), leaving a connection that hears nothing.
        try:
            await self.connection().request("$JS.API.INFO", b"", timeout=1.0)
            return True
        except Exception:
            self._settled_at = self.clock() + 1.5 * self.interval
            return False

    async def step(self) -> None:
        now = self.clock()
        settled = now >= self._settled_at
        live = self.registry.live(now)
        # An executor silent since before our start is unknown to us; 3 intervals is
        # what a known one gets.
        grace = max(3 * self.interval, self._settled_at - now)
        for workflow_id in list(self.table):
            async with self._lock:
                d = self.table.get(workflow_id)
                if d is None:
                    continue
                if workflow_id in self._unpublished:
                    await self._publish_request(workflow_id, d)
                    continue
                claim = self.claims.get((workflow_id, d.attempt))
                dead = claimant_dead(claim, self.registry, now, grace)
                if (cancel := self._cancel_request(workflow_id)) is not None:
                    await self._cancel(workflow_id, d, cancel, claim, dead and settled)
                    continue
                action = next_action(d, live, dead, settled)
                if isinstance(action, Send):
                    await self._send(workflow_id, d, action)
                elif isinstance(action, Queue):
                    await self._queue(workflow_id, d, action)
        self._forget(now)

    def _cancel_request(self, workflow_id: str) -> CancelRequest | None:
        raw = self.cancels.get(workflow_id)
        return decode_cancel(raw) if raw else None

    async def _cancel(
        self, workflow_id: str, d: DispatchState, cancel: CancelRequest, claim: Claim | None,
        dead: bool,
    ) -> None:  # fmt: skip
        step = cancel_step(d, claim, dead)
        if step == "wait" or (step == "claim" and not await self.feed.take(workflow_id, d.attempt)):
            return  # an executor holds it: it stops the run and says so
        with _in_trace(d):
            await self._publish_cancelled(workflow_id, d.attempt, cancel)
        await self._drop(workflow_id)

    async def _publish_cancelled(
        self, workflow_id: str, attempt: int, cancel: CancelRequest
    ) -> None:
        await self.bus.publish(WorkflowCancelled(
            event_id=f"cancelled-{workflow_id}-a{attempt}", workflow_id=workflow_id,
            attempt=attempt, reason=cancel.describe(), cancelled_by=cancel.principal,
        ))  # fmt: skip

    async def _send(self, workflow_id: str, d: DispatchState, action: Send) -> None:
        if d.state == "dispatched":
            log.warning(
                "resending %s as attempt %d: its executor is gone", workflow_id, action.attempt
            )
        new = _dispatched(d, action)
        await self.store.put(workflow_id, new)
        self.table[workflow_id] = new
        self._unpublished.add(workflow_id)
        await self._publish_request(workflow_id, new)

    async def _publish_request(self, workflow_id: str, d: DispatchState) -> None:
        assert d.pool is not None
        with _in_trace(d):
            await self.bus.publish(WorkflowRequested(
                # Deterministic id: JetStream drops a republish of the same attempt.
                event_id=f"requested-{workflow_id}-a{d.attempt}",
                workflow_id=workflow_id,
                spec=d.spec,
                pool=d.pool,
                attempt=d.attempt,
                principal=d.principal,
            ))  # fmt: skip
        self._unpublished.discard(workflow_id)

    async def _queue(self, workflow_id: str, d: DispatchState, action: Queue) -> None:
        digest = hashlib.sha256(action.reason.encode()).hexdigest()[:12]
        with _in_trace(d):
            await self.bus.publish(WorkflowQueued(
                event_id=f"queued-{workflow_id}-a{action.attempt}-{digest}",
                workflow_id=workflow_id,
                reason=action.reason,
                attempt=action.attempt,
            ))  # fmt: skip
        new = msgspec.structs.replace(
            d, state="pending", pool=None, attempt=action.attempt, reason=action.reason
        )
        await self.store.put(workflow_id, new)
        self.table[workflow_id] = new

    def _forget(self, now: float) -> None:
        self.registry.forget(now, FORGET_AFTER_S)
        stale = [
            k
            for k, c in self.claims.items()
            if k[0] not in self.table and now - c.seen_at > FORGET_AFTER_S
        ]
        for key in stale:
            del self.claims[key]


def _dispatched(d: DispatchState, action: Send) -> DispatchState:
    return msgspec.structs.replace(
        d, state="dispatched", pool=action.pool, attempt=action.attempt, reason=None
    )


@contextlib.contextmanager
def _in_trace(d: DispatchState) -> Iterator[None]:
    """Make the accepted event's trace current while publishing for ``d``."""
    token = otel_context.attach(propagate.extract(d.trace))
    try:
        yield
    finally:
        otel_context.detach(token)
