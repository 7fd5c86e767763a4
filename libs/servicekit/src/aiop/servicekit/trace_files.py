"""Reading the span files ``telemetry.setup_tracing`` writes (``<trace_dir>/<service>.jsonl``,
one span per line): `aiop trace` and the gateway's ``GET /v1/workflows/{id}/trace``.

The files only grow, so they are read a line at a time, and a line that does not even
contain the trace id is skipped before it is parsed."""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

Span = dict[str, Any]


def load_spans(trace_dir: Path, trace_id: str, limit: int | None = None) -> list[Span]:
    """Every span of ``trace_id`` (32 hex digits) found in ``trace_dir/*.jsonl``, at most
    ``limit`` of them."""
    found: list[Span] = []
    for span in _spans_of(trace_dir, trace_id):
        if limit is not None and len(found) >= limit:
            break
        found.append(span)
    return found


def _spans_of(trace_dir: Path, trace_id: str) -> Iterator[Span]:
    wanted = "0x" + trace_id.lower().removeprefix("0x")
    for path in sorted(trace_dir.glob("*.jsonl")):
        with path.open(errors="replace") as lines:
            for line in lines:
                if wanted not in line:  # cheap pre-filter before parsing
                    continue
                try:
                    span = json.loads(line)
                    if span["context"]["trace_id"] == wanted:
                        yield span
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash mid-write


def service_of(span: Span) -> str:
    return str(span.get("resource", {}).get("attributes", {}).get("service.name", "?"))


def span_ns(span: Span, which: str) -> int:
    """A span's ``start`` or ``end`` in Unix nanoseconds. Files written before AIOP wrote
    ``*_time_unix_nano`` hold ISO 8601 ``*_time`` strings instead."""
    if f"{which}_time_unix_nano" in span:
        return int(span[f"{which}_time_unix_nano"])
    at = datetime.fromisoformat(span[f"{which}_time"].replace("Z", "+00:00"))
    return int(at.timestamp() * 1e9)


def duration_ms(span: Span) -> float:
    return (span_ns(span, "end") - span_ns(span, "start")) / 1e6
