"""JetStream key-value buckets: opening one that another service may be creating too,
and mirroring one in memory."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from nats.js.object_store import ObjectStore

from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.servicekit.kv")


async def open_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    replicas: int = 1,
    history: int = 1,
    ttl_s: float | None = None,
) -> KeyValue:
    """The bucket, created on file storage if missing.

    Several services (and several replicas of one) open the same buckets at start: when
    another one creates it first, or created it with other settings, that bucket is used.
    """
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=bucket, history=history, storage=StorageType.FILE, replicas=replicas, ttl=ttl_s
    )
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError:  # created meanwhile, with other settings
        return await js.key_value(bucket)


async def open_object_store(
    js: JetStreamContext,
    bucket: str,
    *,
    replicas: int = 1,
    ttl_s: float | None = None,
    max_bytes: int | None = None,
) -> ObjectStore:
    """The object store, created on file storage if missing (as ``open_bucket``)."""
    try:
        return await js.object_store(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    config = ObjectStoreConfig(
        bucket=bucket, storage=StorageType.FILE, replicas=replicas, ttl=ttl_s,
        max_bytes=max_bytes,
    )  # fmt: skip
    try:
        return await js.create_object_store(bucket, config=config)
    except nats.js.errors.BadRequestError:
        return await js.object_store(bucket)


LOAD_TIMEOUT_S = 10.0
PutHandler = Callable[[str, bytes], None]


class KeyMirror:
    """A bucket's keys and values in memory: loaded when opened, then kept current by a
    watch (an ordered consumer, which catches up by itself after a reconnect). Each value
    written after the load is also handed to ``on_put``. Keys the bucket expires are
    dropped here once older than ``ttl_s``."""

    def __init__(self, kv: KeyValue, on_put: PutHandler | None = None, ttl_s: float = 0) -> None:
        self._kv = kv
        self._on_put = on_put
        self._ttl_s = ttl_s
        self._values: dict[str, tuple[bytes, float]] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._watcher = await self._kv.watchall()
        while (entry := await self._watcher.updates(LOAD_TIMEOUT_S)) is not None:  # type: ignore[no-untyped-call]
            self._keep(entry)
        self._task = asyncio.create_task(self._follow(self._watcher))

    def get(self, key: str) -> bytes | None:
        held = self._values.get(key)
        return held[0] if held else None

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._watcher is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is not None and self._keep(entry) and self._on_put is not None:
                try:
                    self._on_put(entry.key, entry.value or b"")
                except Exception:  # one bad value must not end the watch
                    log.exception("handling %s in bucket %s failed", entry.key, entry.bucket)

    def _keep(self, entry: KeyValue.Entry) -> bool:
        """Take ``entry`` in; True when it put a value (not a delete)."""
        if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
            self._values.pop(entry.key, None)
            return False
        self._values[entry.key] = (entry.value, time.monotonic())
        if self._ttl_s:
            cutoff = time.monotonic() - self._ttl_s
            for key in [k for k, (_, at) in self._values.items() if at < cutoff]:
                del self._values[key]
        return True


async def current_values(kv: KeyValue, pattern: str, timeout_s: float = 5.0) -> list[bytes]:
    """The values of the live keys matching ``pattern`` (a key filter), as they are now."""
    return [
        entry.value
        for entry in await current_entries(kv, pattern, timeout_s)
        if entry.operation not in (KV_DEL, KV_PURGE) and entry.value
    ]


async def current_entries(
    kv: KeyValue, pattern: str, timeout_s: float = 5.0
) -> list[KeyValue.Entry]:
    """The last entry of each key matching ``pattern`` (a key filter), as they are now:
    values, and the delete markers of keys removed (while the bucket keeps them).

    Not by the watcher's "caught up" marker: nats-py sends it when the consumer reports
    nothing pending and nothing delivered yet, which also holds while the first messages
    are still on their way, so a list could come back empty. The stream's subjects say
    whether anything is to come, and the last entry delivered has nothing pending after
    it (``delta`` 0): deletes are read too, since the last one may be a delete.
    """
    js, stream, prefix = kv._js, kv._stream, kv._pre  # nats-py keeps them private
    info = await js.stream_info(stream, subjects_filter=prefix + pattern)
    if not info.state.subjects:
        return []
    watcher = await kv.watch(pattern)
    entries: list[KeyValue.Entry] = []
    try:
        while True:
            entry = await watcher.updates(timeout_s)  # type: ignore[no-untyped-call]
            if entry is None:  # the marker, before or after the entries
                continue
            entries.append(entry)
            if entry.delta == 0:
                return entries
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
