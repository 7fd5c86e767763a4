"""``aiop trace`` reads span files written now (nanosecond times) and before (ISO times)."""

import json
from pathlib import Path

from aiop.cli.trace import load_spans, tree_lines

TRACE = "0af7651916cd43dd8448eb211c80319c"


def span(name: str, span_id: str, parent: str | None, service: str, **times: object) -> dict:  # type: ignore[type-arg]
    return {
        "name": name,
        "context": {"trace_id": f"0x{TRACE}", "span_id": span_id},
        "parent_id": parent,
        "resource": {"attributes": {"service.name": service}},
        **times,
    }


def test_old_and_new_span_files_make_one_tree(tmp_path: Path) -> None:
    old = span("POST /v1/workflows", "0x01", None, "gateway",
               start_time="2026-11-22T06:00:00.000000Z", end_time="2026-11-22T06:00:00.004000Z")  # fmt: skip
    start = 1_795_327_200_001_000_000  # 2026-11-22T06:00:00.001Z
    new = span("aiop.workflow.submitted.v1.wf1 process", "0x02", "0x01", "task-manager",
               start_time_unix_nano=start, end_time_unix_nano=start + 2_500_000)  # fmt: skip
    (tmp_path / "gateway.jsonl").write_text(json.dumps(old) + "\n")
    (tmp_path / "task-manager.jsonl").write_text(json.dumps(new) + "\n")

    spans = load_spans(tmp_path, TRACE)

    assert tree_lines(spans) == [
        f"{'gateway':<16} POST /v1/workflows  4.00 ms",
        f"  {'task-manager':<16} aiop.workflow.submitted.v1.wf1 process  2.50 ms",
    ]
