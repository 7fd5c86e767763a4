"""GET /v1/cache, DELETE /v1/cache/{key}, DELETE /v1/cache (prune): the step cache, per
project."""

from datetime import timedelta
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from aiop.contracts.events import now
from aiop.gateway.access import allow, project_for
from aiop.gateway.adapters.step_cache import CacheList, CacheStats, StepCache
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated
from aiop.gateway.domain.fleet import window_s
from aiop.gateway.openapi import BEARER, json_reply, problems
from aiop.gateway.problems import Problem

JSON = "application/json"
MAX_AGE_S = 10 * 365 * 86400.0


def router(gw: Gateway) -> APIRouter:
    api = APIRouter()
    Caller = Annotated[Claims, Depends(authenticated(gw))]
    Project = Annotated[str | None, Query(description="One project; default: all of yours.")]

    @api.get("/v1/cache", responses={200: json_reply("CacheList", "The step cache's entries"),
                            **problems(400, 401, 403, 404, 422, 429, 431, 503)}, openapi_extra=BEARER)  # fmt: skip
    async def entries(caller: Caller, project: Project = None) -> Response:
        mine = await _projects(gw, caller, project, "cache:read")
        found = [e for e in await _cache(gw).entries() if e.project in mine]
        sizes = {e.outputs_digest: e.outputs_size for e in found if e.outputs_digest}
        body = CacheList(entries=found, total_outputs_bytes=sum(sizes.values()))
        return Response(msgspec.json.encode(body), media_type=JSON)

    # Not under /v1/cache: a fixed path there would also fit DELETE /v1/cache/{key}.
    @api.get("/v1/stats/cache", responses={200: json_reply("CacheStats", "The step cache's size and use"),
                                  **problems(400, 401, 403, 404, 422, 429, 431, 503)},
             openapi_extra=BEARER)  # fmt: skip
    async def stats(caller: Caller, project: Project = None) -> Response:
        """How big the step cache is and how well it serves.

        - ``entries``, ``bytes``: the cache entries now, and the bytes of the output
          archives stored (with ``project``: its entries, and the archives they name).
        - ``hits``, ``misses``: step-cache lookups by cache key, as the executors heard
          from in the last minutes count them since each started (``window_s``: how far
          back the oldest count reaches; ``executors``: how many are summed). A miss is
          no entry, one of another project, or one whose outputs are gone. ``hit_rate``:
          hits / (hits + misses), null before any lookup.
        - ``evictions``: ``removed`` (entries removed by ``aiop cache rm|prune`` whose
          delete markers the bucket still keeps, i.e. within its TTL) plus
          ``outputs_gone`` (entries the executors found whose outputs the object store
          had dropped, by its size limit or TTL). Entries the bucket expires by TTL leave
          no trace, so they are not counted.

        Hits, misses and evictions are the whole platform's: they name no project."""
        mine = None if project is None else await _projects(gw, caller, project, "cache:read")
        size = await _cache(gw).size(mine)
        use = gw.fleet.cache_use()
        looked_up = use.hits + use.misses
        body = CacheStats(
            entries=size.entries, bytes=size.bytes, hits=use.hits, misses=use.misses,
            hit_rate=round(use.hits / looked_up, 4) if looked_up else None,
            evictions=size.removed + use.outputs_gone, removed=size.removed,
            outputs_gone=use.outputs_gone, window_s=window_s(use.since),
            executors=use.executors,
        )  # fmt: skip
        return Response(msgspec.json.encode(body), media_type=JSON)

    @api.delete("/v1/cache/{key}", responses={200: json_reply("CacheEntry", "The entry, now removed"),
                                     **problems(400, 401, 403, 404, 429, 431, 503)},
                openapi_extra=BEARER)  # fmt: skip
    async def remove(key: str, caller: Caller) -> Response:
        if not _is_key(key):
            raise Problem(400, "a cache key is 64 hexadecimal digits", kind="bad-cache-key")
        cache = _cache(gw)
        entry = await cache.get(key)
        if entry is None or entry.project not in caller.projects:
            raise Problem(404, f"no cache entry {key}", kind="not-found")
        await allow(gw, caller.sub, entry.project, "cache:write")
        await cache.remove(key)
        return Response(msgspec.json.encode(entry), media_type=JSON)

    @api.delete("/v1/cache", responses={200: json_reply("Pruned", "What was removed"),
                               **problems(400, 401, 403, 404, 422, 429, 431, 503)},
                openapi_extra=BEARER)  # fmt: skip
    async def prune(
        caller: Caller,
        project: Project = None,
        older_than_s: Annotated[
            float | None,
            Query(ge=0, le=MAX_AGE_S, description="Only entries older than this; default all."),
        ] = None,
    ) -> Response:
        """Prune: remove entries (all, or those older than ``older_than_s``), then every
        output archive no entry names any more."""
        mine = await _projects(gw, caller, project, "cache:write")
        before = None if older_than_s is None else now() - timedelta(seconds=older_than_s)
        pruned = await _cache(gw).prune(mine, before)
        return Response(msgspec.json.encode(pruned), media_type=JSON)

    return api


async def _projects(gw: Gateway, caller: Claims, project: str | None, action: str) -> set[str]:
    """The project asked for, or all the caller's, once it may do ``action`` in each."""
    if project is not None:
        return {await project_for(gw, caller, project, action)}
    for name in sorted(caller.projects):
        await allow(gw, caller.sub, name, action)
    return set(caller.projects)


def _is_key(key: str) -> bool:
    return len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def _cache(gw: Gateway) -> StepCache:
    if gw.step_cache is None:
        raise Problem(503, "the gateway is not connected to the bus yet", kind="unavailable")
    return gw.step_cache
