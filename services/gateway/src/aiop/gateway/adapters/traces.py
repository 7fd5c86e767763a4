"""A run's spans from the span files the services write where a trace dir is set (the
embedded stack's ``.aiop/traces``; aiop.servicekit.trace_files reads them)."""

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from aiop.servicekit.trace_files import Span, duration_ms, load_spans, service_of, span_ns

# A run of many steps makes a few spans per step and service; past this many the answer
# says it is cut short rather than growing without bound.
MAX_SPANS = 5000


class TraceSpan(msgspec.Struct, frozen=True, kw_only=True):
    span_id: str  # 16 hex digits
    parent_id: str | None  # None for the trace's root (and spans whose parent is elsewhere)
    service: str
    name: str
    start_unix_ns: int
    duration_ms: float
    status: str  # "unset" | "ok" | "error"
    attributes: dict[str, Any]


class WorkflowTrace(msgspec.Struct, frozen=True, kw_only=True):
    trace_id: str  # 32 hex digits
    spans: list[TraceSpan]  # by start time
    truncated: bool = False  # more than MAX_SPANS were found; the first are given


async def stored_trace(trace_dir: Path, trace_id: str) -> WorkflowTrace:
    """The spans of ``trace_id`` under ``trace_dir``, read in a worker thread (the files
    may be large); none when nothing of it is stored there."""
    found = await asyncio.to_thread(load_spans, trace_dir, trace_id, MAX_SPANS + 1)
    spans = sorted((_span(s) for s in found[:MAX_SPANS]), key=lambda s: s.start_unix_ns)
    return WorkflowTrace(trace_id=trace_id, spans=spans, truncated=len(found) > MAX_SPANS)


def _span(span: Span) -> TraceSpan:
    return TraceSpan(
        span_id=_hex(span["context"]["span_id"]), parent_id=_hex(span.get("parent_id")),
        service=service_of(span), name=str(span.get("name", "")),
        start_unix_ns=span_ns(span, "start"), duration_ms=round(duration_ms(span), 3),
        status=str(span.get("status", {}).get("status_code", "UNSET")).lower(),
        attributes=dict(span.get("attributes") or {}),
    )  # fmt: skip


def _hex(value: Any) -> Any:
    """An id as OTLP backends show it: hex digits without the SDK's "0x"."""
    return value.removeprefix("0x") if isinstance(value, str) else None
