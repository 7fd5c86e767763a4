"""``aiop trace``: one workflow's span tree, read from the embedded stack's span files."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any


def load_spans(trace_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    """Every span of ``trace_id`` (32 hex digits) found in ``trace_dir/*.jsonl``."""
    wanted = "0x" + trace_id.lower().removeprefix("0x")
    spans = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        with path.open() as lines:
            for line in lines:
                if wanted not in line:  # cheap pre-filter before parsing
                    continue
                span = json.loads(line)
                if span["context"]["trace_id"] == wanted:
                    spans.append(span)
    return spans


def service_of(span: dict[str, Any]) -> str:
    return str(span.get("resource", {}).get("attributes", {}).get("service.name", "?"))


def tree_lines(spans: list[dict[str, Any]]) -> list[str]:
    by_id = {s["context"]["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in by_id else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: _ns(s, "start"))
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        ms = _duration_ms(span)
        lines.append(f"{'  ' * depth}{service_of(span):<16} {span['name']}  {ms:.2f} ms")
        for child in children.get(span["context"]["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return lines


def _duration_ms(span: dict[str, Any]) -> float:
    return (_ns(span, "end") - _ns(span, "start")) / 1e6


def _ns(span: dict[str, Any], which: str) -> int:
    """A span's start or end in Unix nanoseconds. Files written before AIOP wrote
    ``*_time_unix_nano`` hold ISO 8601 ``*_time`` strings instead."""
    if f"{which}_time_unix_nano" in span:
        return int(span[f"{which}_time_unix_nano"])
    at = datetime.fromisoformat(span[f"{which}_time"].replace("Z", "+00:00"))
    return int(at.timestamp() * 1e9)
