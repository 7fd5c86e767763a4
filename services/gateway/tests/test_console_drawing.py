"""What the console draws on the server: the step graph's layers, the throughput chart
and the trace waterfall."""

from aiop.gateway.console import charts, graph, waterfall


def step(name: str, *needs: str, state: str = "pending") -> dict[str, object]:
    return {"name": name, "needs": list(needs), "state": state}


def test_every_edge_points_right_and_a_layer_keeps_the_workflows_order() -> None:
    steps = [step("fetch"), step("build", "fetch"), step("lint", "fetch"),
             step("test", "build", "lint"), step("docs")]  # fmt: skip
    drawn = graph.layout(steps)
    at = {n.name: n for n in drawn.nodes}
    assert graph.columns(steps) == {"fetch": 0, "build": 1, "lint": 1, "test": 2, "docs": 0}
    for edge in drawn.edges:
        assert at[edge.source].x < at[edge.target].x
    assert {(e.source, e.target) for e in drawn.edges} == {
        ("fetch", "build"), ("fetch", "lint"), ("build", "test"), ("lint", "test")}  # fmt: skip
    assert at["build"].y < at["lint"].y  # same layer: the order written
    assert drawn.width >= at["test"].x + graph.NODE_W
    assert drawn.height >= max(n.y for n in drawn.nodes) + graph.NODE_H


def test_a_cycle_or_an_unknown_need_never_hangs_the_layout() -> None:
    drawn = graph.layout([step("a", "b"), step("b", "a"), step("c", "ghost")])
    assert {n.name for n in drawn.nodes} == {"a", "b", "c"}
    assert all(e.source != "ghost" for e in drawn.edges)


def test_a_chart_stacks_failed_runs_on_the_rest_and_scales_to_the_busiest_minute() -> None:
    stats = {"series": [
        {"at": "2026-12-03T12:00:00Z", "finished": 4, "failed": 1, "p50_ms": 20.0, "p95_ms": 40.0},
        {"at": "2026-12-03T12:01:00Z", "finished": 0, "failed": 0, "p50_ms": None},
        {"at": "2026-12-03T12:02:00Z", "finished": 2, "failed": 0, "p50_ms": 10.0, "p95_ms": 12.0},
    ]}  # fmt: skip
    chart = charts.throughput(stats)
    first, empty, last = chart.bars
    assert chart.most == 4
    assert chart.slowest_ms == 40.0
    assert first.ok_h == 3 * first.failed_h
    assert first.failed_y + first.failed_h == first.ok_y
    assert empty.ok_h == 0
    assert empty.failed_h == 0
    assert last.ok_h == 2 / 3 * first.ok_h
    assert len(chart.p50.split()) == 2  # the quiet minute has no latency point
    assert "1 failed" in first.title
    assert "p95 40 ms" in first.title
    assert charts.throughput({}).bars == []


def test_a_waterfall_puts_children_under_their_parent_on_one_time_axis() -> None:
    spans = [
        {"span_id": "a", "parent_id": None, "service": "gateway", "name": "POST",
         "start_unix_ns": 1_000_000_000, "duration_ms": 10.0},
        {"span_id": "c", "parent_id": "a", "service": "executor", "name": "run",
         "start_unix_ns": 1_005_000_000, "duration_ms": 5.0, "status": "ERROR"},
        {"span_id": "b", "parent_id": "a", "service": "task-manager", "name": "accept",
         "start_unix_ns": 1_001_000_000, "duration_ms": 2.0},
    ]  # fmt: skip
    drawn = waterfall.layout(spans)
    assert [(r.name, r.depth) for r in drawn.rows] == [("POST", 0), ("accept", 1), ("run", 1)]
    assert drawn.total_ms == 10.0
    root, accept, run = drawn.rows
    assert root.x == 0
    assert root.width == waterfall.BAR_W
    assert run.x == waterfall.BAR_W / 2
    assert run.failed
    assert not accept.failed
    assert drawn.services == ["executor", "gateway", "task-manager"]
    assert waterfall.layout([]).rows == []
