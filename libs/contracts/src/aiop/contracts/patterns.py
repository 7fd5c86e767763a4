"""Subject patterns of the event streams: which streams a set of patterns reads, and the
filters each is read with. ``aiop tail`` and the gateway's live tail (``GET /v1/stream``)
choose their streams and server-side filters here.

A filter the server is handed must not overlap another of the same consumer, so patterns
that partly overlap fall back to the whole stream subjects they touch; the reader then
matches each message against the patterns itself (``matches``).
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import combinations

from aiop.contracts.events import EVENT_TYPES
from aiop.contracts.subjects import STREAM_SUBJECTS, WORK_QUEUES

MAX_PATTERN = 256  # characters: a pattern is a filter on the server, not a document

# Where a workflow's id sits in its events' subjects, from each event's routing tokens:
# "aiop.workflow.*.*.{}", and "aiop.workflow.*.*.*.{}" for aiop.workflow.requested.v1.<pool>.<id>.
WORKFLOW_SUBJECTS = tuple(
    sorted({
        ".".join([*cls.TYPE.split(".")[:2], "*", "*", *["*"] * cls.ROUTING.index("workflow_id"), "{}"])
        for cls in EVENT_TYPES.values()
        if "workflow_id" in cls.ROUTING
    })
)  # fmt: skip

# Every stream but the work queues: reading one takes its messages from their consumers.
READABLE = tuple(stream for stream in STREAM_SUBJECTS if stream not in WORK_QUEUES)


class BadPattern(ValueError):
    """Not a subject pattern NATS can filter on."""


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a subject filter: tokens of printable characters without
    whitespace, ``*`` a whole token, ``>`` only the last."""
    tokens = pattern.split(".")
    if not pattern or len(pattern) > MAX_PATTERN:
        raise BadPattern(f"a subject pattern is 1-{MAX_PATTERN} characters")
    for i, token in enumerate(tokens):
        if not token or not token.isprintable() or any(c.isspace() for c in token):
            raise BadPattern(f"{pattern!r}: empty token or whitespace")
        if ("*" in token and token != "*") or (">" in token and token != ">"):
            raise BadPattern(f"{pattern!r}: a wildcard is a whole token")
        if token == ">" and i != len(tokens) - 1:
            raise BadPattern(f"{pattern!r}: '>' only ends a pattern")
    return pattern


def start_time(value: str, now: datetime | None = None) -> datetime:
    """Where a tail starts: ``30s``, ``5m``, ``2h``, ``1d`` ago, or an ISO 8601 time (a
    time without a zone is local); ValueError for anything else."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        ago = timedelta(seconds=float(value[:-1]) * units[value[-1]])
        return (now or datetime.now(UTC)) - ago
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.astimezone()


def streams_for(
    patterns: list[str], workflow: str | None = None, streams: Iterable[str] = READABLE
) -> dict[str, list[str]]:
    """The ``streams`` holding subjects that match ``patterns`` (and belong to
    ``workflow``), each with the filters that select them on the server."""
    chosen: dict[str, list[str]] = {}
    for stream in streams:
        subjects = STREAM_SUBJECTS[stream]
        filters = _filters(patterns, subjects, workflow)
        if any(intersect(a, b) for a, b in combinations(filters, 2)):
            # The server refuses overlapping filters: take the whole of the stream subjects
            # they touch and leave the choice to the client-side match.
            touched = [s for s in subjects if any(intersect(f, s) for f in filters)]
            filters = _filters(touched, subjects, workflow)
        if filters:
            chosen[stream] = filters
    return chosen


def matches(patterns: list[str], subject: str) -> bool:
    """Whether ``subject`` matches one of ``patterns``."""
    return any(intersect(p, subject) for p in patterns)


def _filters(patterns: list[str], subjects: list[str], workflow: str | None) -> list[str]:
    scopes = [s.format(workflow) for s in WORKFLOW_SUBJECTS] if workflow else [">"]
    found = {
        f
        for pattern in patterns
        for subject in subjects
        for scope in scopes
        if (f := intersect(pattern, subject)) and (f := intersect(f, scope))
    }
    return sorted(f for f in found if not any(g != f and covers(g, f) for g in found))


def intersect(a: str, b: str) -> str | None:
    """The pattern matching exactly the subjects both ``a`` and ``b`` match, if any."""
    ta, tb = a.split("."), b.split(".")
    both: list[str] = []
    for i, (x, y) in enumerate(zip(ta, tb, strict=False)):
        if x == ">":
            return ".".join(both + tb[i:])
        if y == ">":
            return ".".join(both + ta[i:])
        if x != y and "*" not in (x, y):
            return None
        both.append(y if x == "*" else x)
    return ".".join(both) if len(ta) == len(tb) else None


def covers(a: str, b: str) -> bool:
    """Whether every subject matching ``b`` matches ``a``."""
    return intersect(a, b) == b
