"""Run statistics from the run history, computed where the runs are: PostgreSQL counts
and takes percentiles, only the buckets travel."""

import json
from datetime import timedelta
from typing import Any

from aiop.contracts.stats import StatsBucket, StatsQuery, WorkflowStats
from aiop.task_manager.adapters import Conn

# The filters of the run list (adapters/store.py, ``listing``), over $1..$6.
FILTERS = (
    " project = any($1::text[])"
    " and ($2::text is null or project = $2)"
    " and ($3::text is null or task = $3)"
    " and ($4 = '' or template = $4 || '@' || $5 or ($5 = '' and template like $4 || '@%'))"
    " and ($6::jsonb = '{}'::jsonb or spec->'labels' @> $6::jsonb)"
)
# Runs submitted in the window, by their state now.
COUNTS = (
    "select state, count(*) as n from workflows"
    " where FILTERS and created_at >= $7::timestamptz and created_at < $8::timestamptz"
    " group by state"
).replace("FILTERS", FILTERS)
# Runs that ended in the window, by bucket: how many, how many failed, and the
# percentiles of submitted -> finished. A rejected run never started, so has no end.
SERIES = (
    "select floor(extract(epoch from finished_at - $7::timestamptz) / $9::int)::int as bucket,"
    "  count(*) as finished,"
    "  count(*) filter (where state in ('failed', 'timed_out')) as failed,"
    "  percentile_cont(0.5) within group (order by latency_ms) as p50,"
    "  percentile_cont(0.95) within group (order by latency_ms) as p95"
    " from (select state, finished_at,"
    "         extract(epoch from finished_at - created_at) * 1000 as latency_ms"
    "       from workflows"
    "      where FILTERS and finished_at >= $7::timestamptz and finished_at < $8) ended"
    " group by bucket"
).replace("FILTERS", FILTERS)


async def run_stats(conn: Conn, q: StatsQuery) -> WorkflowStats:
    name, _, version = (q.template or "").partition("@")
    filters = (q.visible, q.project, q.task, name, version, json.dumps(q.labels))
    counts = {r["state"]: r["n"] for r in await conn.fetch(COUNTS, *filters, q.since, q.until)}
    ended = {
        r["bucket"]: r for r in await conn.fetch(SERIES, *filters, q.since, q.until, q.bucket_s)
    }
    step = timedelta(seconds=q.bucket_s)
    buckets = -(-int((q.until - q.since).total_seconds()) // q.bucket_s)  # ceiling
    series = [_bucket(q.since + i * step, ended.get(i)) for i in range(buckets)]
    return WorkflowStats(counts=counts, total=sum(counts.values()), series=series,
                         since=q.since, until=q.until, bucket_s=q.bucket_s)  # fmt: skip


def _bucket(at: Any, row: Any) -> StatsBucket:
    if row is None:
        return StatsBucket(at=at, finished=0, failed=0, p50_ms=None, p95_ms=None)
    return StatsBucket(at=at, finished=row["finished"], failed=row["failed"],
                       p50_ms=_ms(row["p50"]), p95_ms=_ms(row["p95"]))  # fmt: skip


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)
