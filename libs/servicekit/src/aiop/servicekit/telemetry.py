"""Tracing: one TracerProvider per process, exporting where the environment says.

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: OTLP over HTTP to a collector.
- ``AIOP_TRACE_DIR`` set: JSON lines in ``<dir>/<service>.jsonl``, read by `aiop trace`.
"""

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


def span_record(span: ReadableSpan, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """The span as ``aiop trace`` reads it: the SDK's JSON shape, except for times in
    Unix nanoseconds, as OTLP has them. The SDK's own ``to_json`` (indentation, ISO
    times) cost more CPU than most of the work being traced."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "context": {"trace_id": f"0x{ctx.trace_id:032x}", "span_id": f"0x{ctx.span_id:016x}"},
        "kind": span.kind.name,
        "parent_id": f"0x{span.parent.span_id:016x}" if span.parent else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {"status_code": span.status.status_code.name},
        "attributes": span.attributes,
        "events": [{"name": e.name, "time_unix_nano": e.timestamp} for e in span.events],
        "resource": {"attributes": resource or dict(span.resource.attributes)},
    }


class JsonLinesExporter(SpanExporter):
    """One JSON object per line per span, appended to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._lock = threading.Lock()
        # Attributes are a Mapping the encoder does not know; it hands them back as a dict.
        self._encode = msgspec.json.Encoder(enc_hook=dict).encode
        self._resources: dict[int, dict[str, Any]] = {}  # one process, one resource

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        chunk = b"".join(self._encode(span_record(s, self._resource(s))) + b"\n" for s in spans)
        with self._lock:
            self.out.write(chunk)
            self.out.flush()
        return SpanExportResult.SUCCESS

    def _resource(self, span: ReadableSpan) -> dict[str, Any]:
        key = id(span.resource)
        if key not in self._resources:
            self._resources[key] = dict(span.resource.attributes)
        return self._resources[key]

    def shutdown(self) -> None:
        self.out.close()


def setup_tracing(service: str, trace_dir: Path | None = None) -> TracerProvider:
    """Install and return the process's TracerProvider for ``service``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        out = open(trace_dir / f"{service}.jsonl", "ab")  # noqa: SIM115 - the exporter's
        provider.add_span_processor(
            BatchSpanProcessor(JsonLinesExporter(out), schedule_delay_millis=200)
        )
    trace.set_tracer_provider(provider)
    return provider
