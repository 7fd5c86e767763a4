"""Tracing: one TracerProvider per process, exporting where the environment says.

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: OTLP over HTTP to a collector.
- ``AIOP_TRACE_DIR`` set: JSON lines in ``<dir>/<service>.jsonl``, read by `aiop trace`.
"""

import os
from pathlib import Path
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def setup_tracing(service: str, trace_dir: Path | None = None) -> TracerProvider:
    """Install and return the process's TracerProvider for ``service``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        out: IO[str] = open(trace_dir / f"{service}.jsonl", "a", buffering=1)  # noqa: SIM115
        exporter = ConsoleSpanExporter(service_name=service, out=out, formatter=_one_line)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    return provider
