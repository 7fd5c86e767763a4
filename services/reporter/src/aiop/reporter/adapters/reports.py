"""Summaries in JetStream KV bucket ``aiop_reports``, one key per workflow id.

Reporter replicas (and a redelivery racing a later fetch) can write the same key at
once, so every write is a compare-and-set on the revision read (``kv.update(last=...)``),
retried on conflict.
The last state this process wrote is kept in memory and used as the read: a stale copy
(another reporter wrote since) only costs a failed compare-and-set and a real read, and
saving the read halves the reporter's NATS round trips per event.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from aiop.contracts.subjects import KV_REPORTS
from aiop.reporter.domain import ReportState
from aiop.servicekit import open_bucket

log = logging.getLogger("aiop.reporter.reports")

MAX_CONFLICTS = 20
CACHED_REPORTS = 1024  # recent workflows (a workflow's events span well under a second)
_decoder = msgspec.json.Decoder(ReportState)


class ReportStore:
    def __init__(self, js: Callable[[], JetStreamContext], replicas: int = 1) -> None:
        self._js = js  # a callable: the broker connects after the store is built
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        self._written: OrderedDict[str, tuple[ReportState, int]] = OrderedDict()

    async def bucket(self) -> KeyValue:
        """The bucket, created on first use if missing."""
        async with self._lock:
            if self._kv is None:
                self._kv = await open_bucket(self._js(), KV_REPORTS, replicas=self._replicas)
            return self._kv

    async def ready(self) -> None:
        await self.bucket()

    async def get(self, workflow_id: str) -> tuple[ReportState | None, int]:
        """The stored state and its revision (0 when there is none)."""
        kv = await self.bucket()
        try:
            entry = await kv.get(workflow_id)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if entry.value is None:
            return None, entry.revision or 0
        return _decoder.decode(entry.value), entry.revision or 0

    async def change(
        self, workflow_id: str, apply: Callable[[ReportState | None], ReportState]
    ) -> ReportState:
        """Read, apply, write back if changed; start over if someone else wrote in between."""
        kv = await self.bucket()
        for _ in range(MAX_CONFLICTS):
            known = self._written.pop(workflow_id, None)
            old, revision = known if known is not None else await self.get(workflow_id)
            new = apply(old)
            if new == old:
                if known is not None:
                    self._remember(workflow_id, known)
                return new  # a duplicate or late event: nothing to write
            try:
                value = msgspec.json.encode(new)
                if revision == 0:
                    written = await kv.create(workflow_id, value)
                else:
                    written = await kv.update(workflow_id, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                log.debug("report %s changed concurrently, retrying", workflow_id)
                continue
            self._remember(workflow_id, (new, written))
            return new
        # Raising NAKs the event; its redelivery tries again later.
        raise RuntimeError(f"report {workflow_id}: {MAX_CONFLICTS} write conflicts in a row")

    def _remember(self, workflow_id: str, entry: tuple[ReportState, int]) -> None:
        self._written[workflow_id] = entry
        if len(self._written) > CACHED_REPORTS:
            self._written.popitem(last=False)
