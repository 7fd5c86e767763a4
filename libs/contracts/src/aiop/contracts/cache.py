"""The step cache: what a step produced, kept under a digest of everything that
determines it, and shared by every executor through JetStream.

KV ``aiop_step_cache`` holds one entry per result: ``c.<cache key>`` for a cacheable
step, ``r.<workflow>.<step>`` for a step that opted out (``cache: false``), kept only so
that a later attempt of the same workflow resumes instead of running it again. The
outputs themselves are tar archives in Object Store ``aiop_outputs``, named by their
sha256, so identical outputs are stored once.
"""

from datetime import datetime

import msgspec

KV_STEP_CACHE = "aiop_step_cache"
OBJ_OUTPUTS = "aiop_outputs"
CACHE_PREFIX = "c."
RESUME_PREFIX = "r."


class CacheEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    key: str  # the cache key, or "" for a step that opted out
    result: str  # the digest later steps' keys are made from
    project: str
    step: str
    workflow_id: str  # the run that produced it
    attempt: int
    created_at: datetime
    outputs_digest: str | None = None  # its outputs archive in aiop_outputs
    outputs_size: int = 0
    duration_s: float = 0.0  # how long producing it took: what a hit saves


def cache_entry_key(key: str) -> str:
    return CACHE_PREFIX + key


def resume_entry_key(workflow_id: str, step: str) -> str:
    return f"{RESUME_PREFIX}{workflow_id}.{step}"


decode_entry = msgspec.json.Decoder(CacheEntry).decode
