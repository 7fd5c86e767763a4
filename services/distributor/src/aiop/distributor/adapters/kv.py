"""The KV buckets: dispatch state (owned here) and run claims (written by executors)."""

import logging
from collections.abc import AsyncIterator

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aiop.contracts.subjects import KV_CLAIMS, KV_DISPATCH
from aiop.distributor.domain.dispatch import DispatchState, parse_claim_key
from aiop.servicekit import open_bucket

log = logging.getLogger("aiop.distributor.kv")

INITIAL_LOAD_TIMEOUT = 10.0
CANCELLED_CLAIM = "cancelled"  # the holder of an attempt claimed so that it never runs
_decode = msgspec.json.Decoder(DispatchState).decode


class DispatchStore:
    """KV aiop_dispatch. A finished workflow's key keeps its delete marker (history 1),
    which is how a late or redelivered WorkflowAccepted is told apart from a new one."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> "DispatchStore":
        return cls(await open_bucket(js, KV_DISPATCH, replicas=replicas))

    async def load_all(self) -> dict[str, DispatchState]:
        watcher = await self.kv.watchall(ignore_deletes=True)
        try:
            table: dict[str, DispatchState] = {}
            while (entry := await watcher.updates(INITIAL_LOAD_TIMEOUT)) is not None:  # type: ignore[no-untyped-call]
                if entry.value:
                    table[entry.key] = _decode(entry.value)
            return table
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    async def create(self, workflow_id: str, state: DispatchState) -> DispatchState | None:
        """Write a first entry and return the state now stored; None if the workflow
        finished (its key holds a delete marker).

        A key that already holds a state is adopted, not ignored: a create whose write
        landed but whose reply was lost (NATS restarted mid-request) comes back here as a
        redelivery, and ignoring it would leave the workflow in KV but never dispatched.
        """
        try:
            # last=0 demands no message at all on the key, not even a delete marker.
            await self.kv.update(workflow_id, msgspec.json.encode(state), last=0)
        except nats.js.errors.KeyWrongLastSequenceError:
            try:
                entry = await self.kv.get(workflow_id)
            except nats.js.errors.KeyNotFoundError:  # deleted: finished
                return None
            return _decode(entry.value) if entry.value else None
        return state

    async def put(self, workflow_id: str, state: DispatchState) -> None:
        await self.kv.put(workflow_id, msgspec.json.encode(state))

    async def finish(self, workflow_id: str) -> None:
        await self.kv.delete(workflow_id)


class ClaimFeed:
    """KV aiop_claims as a stream of (workflow id, attempt, executor id or None if removed)."""

    def __init__(self, kv: KeyValue, watcher: KeyValue.KeyWatcher) -> None:
        self.kv = kv
        self.watcher = watcher

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> "ClaimFeed":
        kv = await open_bucket(js, KV_CLAIMS, replicas=replicas)
        return cls(kv, await kv.watchall())

    async def take(self, workflow_id: str, attempt: int) -> bool:
        """Claim an attempt for no executor (a cancelled workflow's): True when no one
        had it, so that no executor ever will."""
        try:
            await self.kv.create(f"{workflow_id}.a{attempt}", CANCELLED_CLAIM.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def initial(self) -> list[tuple[str, int, str | None]]:
        """The claims that exist now (the watcher marks their end with None)."""
        out = []
        while (entry := await self.watcher.updates(INITIAL_LOAD_TIMEOUT)) is not None:  # type: ignore[no-untyped-call]
            if (item := _claim(entry)) is not None:
                out.append(item)
        return out

    async def updates(self) -> AsyncIterator[tuple[str, int, str | None]]:
        async for entry in self.watcher:
            if entry is not None and (item := _claim(entry)) is not None:
                yield item

    async def stop(self) -> None:
        await self.watcher.stop()  # type: ignore[no-untyped-call]


def _claim(entry: KeyValue.Entry) -> tuple[str, int, str | None] | None:
    parsed = parse_claim_key(entry.key)
    if parsed is None:
        log.warning("ignoring claim key %r: not <workflow>.a<attempt>", entry.key)
        return None
    if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
        return parsed[0], parsed[1], None
    return parsed[0], parsed[1], entry.value.decode()
