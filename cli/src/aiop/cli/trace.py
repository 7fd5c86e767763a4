"""``aiop trace``: one workflow's span tree, read from the embedded stack's span files
(aiop.servicekit.trace_files reads them, for the gateway's trace route too)."""

from typing import Any

from aiop.servicekit.trace_files import duration_ms, load_spans, service_of, span_ns

__all__ = ["load_spans", "service_of", "tree_lines"]


def tree_lines(spans: list[dict[str, Any]]) -> list[str]:
    by_id = {s["context"]["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in by_id else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: span_ns(s, "start"))
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        ms = duration_ms(span)
        lines.append(f"{'  ' * depth}{service_of(span):<16} {span['name']}  {ms:.2f} ms")
        for child in children.get(span["context"]["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return lines
