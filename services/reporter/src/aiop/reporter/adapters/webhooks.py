"""Webhooks in KV ``aiop_webhooks`` (``<project>.<id>``) and their deliveries in KV
``aiop_webhook_deliveries`` (``<webhook id>.<delivery id>``, kept a week).

The fan-out reads webhooks from memory, since it runs for every fold of events: the
copy is loaded at start and kept current by a watch, so every reporter replica sees a
webhook another created, changed or deleted. Replicas and the delivery workers write
the same keys, so each write is a compare-and-set on the revision read, retried on
conflict (as the reports are).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aiop.contracts.subjects import KV_WEBHOOK_DELIVERIES, KV_WEBHOOKS
from aiop.reporter.domain.webhooks import StoredDelivery, StoredWebhook
from aiop.servicekit import open_bucket
from aiop.servicekit.kv import current_values
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.reporter.webhooks")

MAX_CONFLICTS = 20
LOAD_TIMEOUT_S = 10.0
DELIVERIES_KEPT_S = 7 * 24 * 3600.0
T = TypeVar("T", bound=msgspec.Struct)


class Conflict(Exception):
    """A key kept changing under a compare-and-set."""


class Keyed(Generic[T]):
    """Values of one type in one bucket, read and changed by compare-and-set."""

    def __init__(self, kind: type[T]) -> None:
        self.kv: KeyValue | None = None
        self._decode = msgspec.json.Decoder(kind).decode

    def bucket(self) -> KeyValue:
        assert self.kv is not None, "opened at start"
        return self.kv

    async def get(self, key: str) -> tuple[T | None, int]:
        """The value and its revision (0 when there is none)."""
        try:
            entry = await self.bucket().get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        revision = entry.revision or 0
        return (self._decode(entry.value) if entry.value else None), revision

    async def change(self, key: str, apply: Callable[[T | None], T | None]) -> T | None:
        """Read, apply, write back if changed (``None`` from ``apply``: leave it)."""
        kv = self.bucket()
        for _ in range(MAX_CONFLICTS):
            old, revision = await self.get(key)
            new = apply(old)
            if new is None or new == old:
                return old
            value = msgspec.json.encode(new)
            try:
                if revision == 0:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return new
        raise Conflict(f"{key}: {MAX_CONFLICTS} write conflicts in a row")

    async def values(self, pattern: str) -> list[T]:
        return [self._decode(v) for v in await current_values(self.bucket(), pattern)]


class WebhookStore(Keyed[StoredWebhook]):
    """Every webhook, in KV and in memory."""

    def __init__(self, js: Callable[[], JetStreamContext], replicas: int = 1) -> None:
        super().__init__(StoredWebhook)
        self._js = js
        self._replicas = replicas
        self._by_project: dict[str, dict[str, StoredWebhook]] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.kv = await open_bucket(self._js(), KV_WEBHOOKS, replicas=self._replicas)
        self._watcher = await self.kv.watchall()
        while (entry := await self._watcher.updates(LOAD_TIMEOUT_S)) is not None:  # type: ignore[no-untyped-call]
            self._take(entry)
        self._task = asyncio.create_task(self._follow(self._watcher), name="watch webhooks")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._watcher.stop()  # type: ignore[no-untyped-call]

    @property
    def empty(self) -> bool:
        """No webhook anywhere: the fan-out has nothing to do."""
        return not self._by_project

    def of(self, project: str) -> list[StoredWebhook]:
        """The project's webhooks as last seen, from memory."""
        return list(self._by_project.get(project, {}).values())

    def known(self, hook: StoredWebhook | None, project: str, webhook_id: str) -> None:
        """Take in a write of this process at once, before the watch brings it."""
        if hook is None:
            self._by_project.get(project, {}).pop(webhook_id, None)
            if not self._by_project.get(project, True):
                del self._by_project[project]
        else:
            self._by_project.setdefault(project, {})[webhook_id] = hook

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None:
                try:
                    self._take(entry)
                except Exception:  # one bad value must not end the watch
                    log.exception("webhook %s: cannot read it", entry.key)

    def _take(self, entry: KeyValue.Entry) -> None:
        project, _, webhook_id = entry.key.partition(".")
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            self.known(None, project, webhook_id)
        else:
            self.known(self._decode(entry.value), project, webhook_id)


def webhook_key(project: str, webhook_id: str) -> str:
    return f"{project}.{webhook_id}"


class DeliveryStore(Keyed[StoredDelivery]):
    def __init__(self, js: Callable[[], JetStreamContext], replicas: int = 1) -> None:
        super().__init__(StoredDelivery)
        self._js = js
        self._replicas = replicas

    async def open(self) -> None:
        self.kv = await open_bucket(self._js(), KV_WEBHOOK_DELIVERIES, replicas=self._replicas,
                                    ttl_s=DELIVERIES_KEPT_S)  # fmt: skip


def delivery_key(webhook_id: str, delivery_id: str) -> str:
    return f"{webhook_id}.{delivery_id}"
