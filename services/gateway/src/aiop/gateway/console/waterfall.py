"""A run's trace as a waterfall: one row per span, indented under its parent, a bar from
its start to its end on one time axis across every service."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROW_H = 20
LABEL_W = 330
BAR_W = 520
MAX_ROWS = 400  # a page is no place for more; the rest are counted


@dataclass(frozen=True)
class Row:
    y: int
    depth: int
    service: str
    name: str
    x: float
    width: float
    duration_ms: float
    failed: bool


@dataclass(frozen=True)
class Waterfall:
    rows: list[Row]
    total_ms: float
    services: list[str]
    left_out: int
    label_w: int = LABEL_W
    bar_w: int = BAR_W

    @property
    def height(self) -> int:
        return len(self.rows) * ROW_H + 4


def layout(spans: Sequence[Mapping[str, Any]]) -> Waterfall:
    if not spans:
        return Waterfall([], 0.0, [], 0)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: int(s["start_unix_ns"]))
    start = min(int(s["start_unix_ns"]) for s in spans)
    end = max(int(s["start_unix_ns"]) + float(s["duration_ms"]) * 1e6 for s in spans)
    total_ns = max(1.0, end - start)
    ordered: list[tuple[int, Mapping[str, Any]]] = []

    def walk(span: Mapping[str, Any], depth: int) -> None:
        ordered.append((depth, span))
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    rows = []
    for i, (depth, span) in enumerate(ordered[:MAX_ROWS]):
        x = (int(span["start_unix_ns"]) - start) / total_ns * BAR_W
        width = max(1.5, float(span["duration_ms"]) * 1e6 / total_ns * BAR_W)
        rows.append(Row(i * ROW_H, min(depth, 12), str(span.get("service", "?")),
                        str(span.get("name", "")), round(x, 1), round(width, 1),
                        float(span["duration_ms"]),
                        str(span.get("status", "")).upper().startswith("ERROR")))  # fmt: skip
    services = sorted({r.service for r in rows})
    return Waterfall(rows, total_ns / 1e6, services, max(0, len(ordered) - MAX_ROWS))
