"""The benchmark table: ratios against the baselines, and what counts as passing."""

from bench.machine import cpu_ticks, stolen_share
from bench.report import dig, raw_critical_path_ms, table
from bench.stats import percentile, summary
from bench.sustained import _passed


def test_percentiles_take_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert summary([3.0, 1.0, 2.0])["p50"] == 2.0


def test_a_rate_passes_only_with_every_workflow_finished_under_the_bound() -> None:
    assert _passed(10, 10, 0, [50.0] * 10)
    assert not _passed(10, 9, 0, [50.0] * 9)  # one never finished
    assert not _passed(10, 10, 1, [50.0] * 10)  # a submit failed
    assert not _passed(100, 100, 0, [50.0] * 98 + [150.0] * 2)  # p99 over 100 ms


def test_the_table_puts_each_figure_beside_its_baseline() -> None:
    results = {
        "raw": {
            "acked_publish_per_s": 20000.0,
            "acked_publish_seq_latency_ms": {"p50": 1.0},
            "hop": {"latency_ms": {"p50": 2.0}},
        },
        "bus": {"ours": {"hops_per_s": 900.0}, "raw": {"hops_per_s": 1000.0}},
        "latency": {"submit_to_completed_ms": {"p50": 30.0, "p99": 60.0}},
        "gateway": {
            "gateway": {"req_per_s": 1500.0},
            "starlette": {"req_per_s": 3000.0},
        },
        "rss_idle_mib": {"gateway": 100.0},
        "rss_after_mib": {"gateway": 104.0},
    }
    assert raw_critical_path_ms(results, hops=3, publishes=3) == 9.0
    assert dig(results, "bus.ours.missing") is None
    text = table(results)
    assert "0.90x" in text  # bus hop throughput against raw
    assert "0.50x" in text  # gateway against bare Starlette
    assert "3.33x" in text  # e2e p50 against the raw critical path
    assert "+4.0%" in text  # RSS growth


def test_stolen_cpu_is_a_share_of_all_ticks_and_shown_in_the_table() -> None:
    assert stolen_share((1000, 10), (2000, 260)) == 0.25
    assert stolen_share((1000, 10), (1000, 10)) == 0.0  # no time passed
    text = table({"cpu_stolen_share": 0.25, "sustained": {"held": {"cpu_stolen_share": 0.5}}})
    assert "25.0%" in text
    assert "50.0%" in text
    now = cpu_ticks()
    assert now[0] >= now[1] >= 0
