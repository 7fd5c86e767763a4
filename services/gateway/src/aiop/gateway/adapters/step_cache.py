"""The step cache as operators manage it: its entries (KV aiop_step_cache) and the output
archives they name (Object Store aiop_outputs)."""

import contextlib
from dataclasses import dataclass
from datetime import datetime

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectInfo
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from nats.js.object_store import ObjectStore

from aiop.contracts.cache import (
    CACHE_PREFIX,
    KV_STEP_CACHE,
    OBJ_OUTPUTS,
    RESUME_PREFIX,
    CacheEntry,
    cache_entry_key,
    decode_entry,
)
from aiop.servicekit import open_bucket, open_object_store
from aiop.servicekit.kv import current_entries, current_values

LOAD_TIMEOUT_S = 10.0


class CacheList(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[CacheEntry]
    total_outputs_bytes: int  # of these entries' outputs (archives shared count once)


class Pruned(msgspec.Struct, frozen=True, kw_only=True):
    removed_entries: int
    removed_outputs: int
    freed_bytes: int


class CacheStats(msgspec.Struct, frozen=True, kw_only=True):
    """The step cache's size, and how well it serves (GET /v1/stats/cache says what each
    number means)."""

    entries: int
    bytes: int
    hits: int
    misses: int
    hit_rate: float | None  # hits / (hits + misses); None before any lookup
    evictions: int  # removed + outputs_gone
    removed: int
    outputs_gone: int
    window_s: float | None  # how far back hits, misses and outputs_gone reach
    executors: int  # whose counters are summed


@dataclass(frozen=True)
class CacheSize:
    entries: int  # cache entries (not resume records)
    bytes: int  # of the output archives they name, or of all archives stored
    removed: int  # entries removed (rm, prune) whose delete markers the bucket still keeps


class StepCache:
    def __init__(self, kv: KeyValue, objects: ObjectStore) -> None:
        self._kv = kv
        self._objects = objects

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> "StepCache":
        # Opened, not created with limits: executors create them with theirs.
        kv = await open_bucket(js, KV_STEP_CACHE, replicas=replicas)
        return cls(kv, await open_object_store(js, OBJ_OUTPUTS, replicas=replicas))

    async def entries(self) -> list[CacheEntry]:
        """Every cache entry (not the resume records of steps that opted out)."""
        return sorted(await self._load(f"{CACHE_PREFIX}>"), key=lambda e: e.created_at)

    async def _load(self, keys: str) -> list[CacheEntry]:
        """The readable entries under ``keys`` (a KV key filter), as they are now."""
        found = []
        for value in await current_values(self._kv, keys, LOAD_TIMEOUT_S):
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                found.append(decode_entry(value))
        return found

    async def size(self, projects: set[str] | None) -> CacheSize:
        """How big the cache is: the entries of ``projects`` and the bytes of the outputs
        they name (an archive shared counts once), or, for None, every entry and every
        archive stored. ``removed`` is the whole bucket's: a marker names no project."""
        entries, removed = [], 0
        for item in await current_entries(self._kv, f"{CACHE_PREFIX}>", LOAD_TIMEOUT_S):
            if item.operation in (KV_DEL, KV_PURGE) or not item.value:
                removed += 1
                continue
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                entry = decode_entry(item.value)
                if projects is None or entry.project in projects:
                    entries.append(entry)
        if projects is None:
            size = sum(i.size or 0 for i in await self._list_outputs() if not i.deleted)
        else:
            named = {e.outputs_digest: e.outputs_size for e in entries if e.outputs_digest}
            size = sum(named.values())
        return CacheSize(entries=len(entries), bytes=size, removed=removed)

    async def get(self, key: str) -> CacheEntry | None:
        try:
            entry = await self._kv.get(cache_entry_key(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        return decode_entry(entry.value) if entry.value else None

    async def remove(self, key: str) -> None:
        await self._kv.delete(cache_entry_key(key))

    async def prune(self, projects: set[str], before: datetime | None) -> Pruned:
        """Remove the entries of ``projects`` created before ``before`` (all of them when
        None), then every output archive no entry names any more."""
        removed = 0
        kept: set[str] = set()
        for entry in await self.entries():
            if entry.project in projects and (before is None or entry.created_at < before):
                await self.remove(entry.key)
                removed += 1
            elif entry.outputs_digest:
                kept.add(entry.outputs_digest)
        kept |= await self._resumable_outputs()
        outputs = freed = 0
        for info in await self._list_outputs():
            if info.name not in kept and not info.deleted:
                await self._objects.delete(info.name)
                outputs += 1
                freed += info.size or 0
        return Pruned(removed_entries=removed, removed_outputs=outputs, freed_bytes=freed)

    async def _resumable_outputs(self) -> set[str]:
        """Outputs named by resume records: a workflow in progress still needs them."""
        return {e.outputs_digest for e in await self._load(f"{RESUME_PREFIX}>") if e.outputs_digest}

    async def _list_outputs(self) -> list[ObjectInfo]:
        try:
            return list(await self._objects.list())
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
            return []  # the store holds no object at all
