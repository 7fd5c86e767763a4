"""Step outputs and the step cache in JetStream (aiop.contracts.cache says what is where).

Outputs are packed into a tar archive that depends only on their content (names, bytes,
modes; no times or owners), so a step that produces the same files again produces the
same digest, and the steps after it can still be cache hits.
"""

import asyncio
import hashlib
import io
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from aiop.contracts.cache import KV_STEP_CACHE, OBJ_OUTPUTS, CacheEntry
from aiop.servicekit import open_bucket, open_object_store

log = logging.getLogger("aiop.dagger_executor.artifacts")


class StoredEntry(CacheEntry, frozen=True, kw_only=True, omit_defaults=True):
    """A cache entry as executors keep it: with the step's summary (scrubbed), which a
    cached step publishes again. Entries stored before summaries have none; readers of
    plain CacheEntry (the gateway) pass over it."""

    summary: dict[str, Any] = {}


decode_entry = msgspec.json.Decoder(StoredEntry).decode


class MissingOutput(Exception):
    """A step succeeded but did not produce an output it names."""


@dataclass(frozen=True)
class CacheLimits:
    ttl_s: float  # how long an entry and its outputs are kept
    max_bytes: int  # all outputs together; the oldest go first


def pack(workdir: Path, outputs: list[str]) -> bytes:
    """The archive of ``outputs`` (paths under ``workdir``); MissingOutput names the first
    one that is not there."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in outputs:
            root = workdir / name
            if not root.exists() and not root.is_symlink():
                raise MissingOutput(name)
            paths = [root]
            if root.is_dir() and not root.is_symlink():
                paths += sorted(root.rglob("*"))
            for path in paths:
                _add(tar, path, str(path.relative_to(workdir)))
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    info = tar.gettarinfo(str(path), arcname=arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    # Modes set, not kept: a step under a uid of its own reads what another one made.
    info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
    if info.isreg():
        with path.open("rb") as data:
            tar.addfile(info, data)
    else:
        tar.addfile(info)


def unpack(archive: bytes, dest: Path) -> None:
    """Extract ``archive`` under ``dest``; the "data" filter refuses absolute paths, links
    out of ``dest`` and device files, whoever made the archive."""
    missing = [dest, *(p for p in dest.parents if not p.exists())]
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)  # whatever the umask: the step may run under a uid of its own
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(dest, filter="data")
        # The filter leaves folders to the umask; a step under another uid must enter them.
        for member in tar.getmembers():
            if member.isdir():
                (dest / member.name).chmod(0o755)


@dataclass
class CacheCounts:
    """How this executor used the step cache since it started; its heartbeat reports them
    (GET /v1/stats/cache sums them over the fleet)."""

    hits: int = 0  # a lookup by cache key gave the step its result
    misses: int = 0  # it did not: no entry, one it may not take, or its outputs gone
    outputs_gone: int = 0  # of the misses: an entry whose outputs were evicted


class StepStore:
    """The cache index (KV) and the outputs (Object Store) every executor shares; usable
    once opened."""

    def __init__(self, limits: CacheLimits, replicas: int = 1) -> None:
        self.limits = limits
        self.counts = CacheCounts()
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._objects: ObjectStore | None = None

    async def open(self, js: JetStreamContext) -> None:
        ttl, replicas = self.limits.ttl_s, self._replicas
        self._kv = await open_bucket(js, KV_STEP_CACHE, replicas=replicas, ttl_s=ttl)
        self._objects = await open_object_store(
            js, OBJ_OUTPUTS, replicas=replicas, ttl_s=ttl, max_bytes=self.limits.max_bytes
        )

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the step store is not open")
        return self._kv

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            raise RuntimeError("the step store is not open")
        return self._objects

    async def lookup(self, entry_key: str) -> StoredEntry | None:
        try:
            entry = await self.kv.get(entry_key)
        except nats.js.errors.KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            return decode_entry(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("ignoring the unreadable cache entry %s", entry_key)
            return None

    async def record(self, entry_key: str, entry: StoredEntry) -> None:
        await self.kv.put(entry_key, msgspec.json.encode(entry))

    async def keep(self, workdir: Path, outputs: list[str]) -> tuple[str, int]:
        """Store the outputs of a step that ran in ``workdir``: (digest, size)."""
        archive = await asyncio.to_thread(pack, workdir, outputs)
        digest = hashlib.sha256(archive).hexdigest()
        try:
            await self.objects.get_info(digest)  # the same outputs are stored once
        except nats.js.errors.ObjectNotFoundError:
            await self.objects.put(digest, archive)
        return digest, len(archive)

    async def restore(self, digest: str, dest: Path) -> bool:
        """Extract the outputs ``digest`` under ``dest``; False when they are gone (evicted
        or expired), which makes the entry that named them a miss."""
        try:
            found = await self.objects.get(digest)
        except nats.js.errors.ObjectNotFoundError:
            return False
        archive = found.data or b""
        if hashlib.sha256(archive).hexdigest() != digest:
            log.warning("outputs %s do not match their digest; running the step instead", digest)
            return False
        await asyncio.to_thread(unpack, archive, dest)
        return True
