"""Run statistics (``aiop.query.workflow.stats.v1``): how many runs are in each state, and
how many ended, how many failed and how long they took, bucket by bucket. task-manager
computes them in PostgreSQL; the gateway serves them as ``GET /v1/stats``."""

from datetime import datetime

import msgspec

# At most this many buckets in one answer: a window and a bucket size that make more are
# refused (the gateway says so, 422) rather than answered slowly.
MAX_BUCKETS = 1440


class StatsQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The runs to count: in ``visible`` projects (the caller's, as its token says), with
    the filters of ``GET /v1/workflows``, over the window [since, until)."""

    visible: list[str]
    since: datetime
    until: datetime
    bucket_s: int = 60
    project: str | None = None
    task: str | None = None
    template: str | None = None  # "name" (any version) or "name@version"
    labels: dict[str, str] = {}  # every one must match


class StatsBucket(msgspec.Struct, frozen=True, kw_only=True):
    """The runs that ended in [at, at + bucket_s): all of them (``finished``), those that
    failed or timed out (``failed``), and the 50th and 95th percentile of their latency,
    submitted to finished, in milliseconds (null when none ended)."""

    at: datetime
    finished: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


class WorkflowStats(msgspec.Struct, frozen=True, kw_only=True):
    """``counts``: the runs submitted in the window, by their state now (states no run is
    in are left out); ``total``: their sum; ``series``: one bucket per ``bucket_s`` from
    ``since``, empty ones included."""

    counts: dict[str, int]
    total: int
    series: list[StatsBucket]
    since: datetime
    until: datetime
    bucket_s: int
