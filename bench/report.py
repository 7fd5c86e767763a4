"""The table printed at the end of ``task bench``: figure, ours, baseline, ratio, target."""

from typing import Any

Row = tuple[str, str, str, str, str]


def dig(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where anything is missing."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _n(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: Any, base: Any) -> str:
    if not ours or not base:
        return "-"
    ratio = ours / base
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.4f}x"


def raw_critical_path_ms(results: dict[str, Any], hops: int, publishes: int) -> float | None:
    """What the raw hops on a workflow's critical path add up to: ``hops`` consume-and-
    publish hops, then ``publishes`` more acked publishes one after another."""
    hop = dig(results, "raw.hop.latency_ms.p50")
    publish = dig(results, "raw.acked_publish_seq_latency_ms.p50")
    if hop is None or publish is None:
        return None
    return float(hops * hop + publishes * publish)


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = [
        ("raw acked publishes/s (pipelined)", _n(dig(r, "raw.acked_publish_per_s"), 0), "", "", ""),
        ("raw acked publishes/s (one at a time)", _n(dig(r, "raw.acked_publish_seq_per_s"), 0), "", "", ""),
        ("raw pull consume + ack/s", _n(dig(r, "raw.pull_consume_ack_per_s"), 0), "", "", ""),
    ]  # fmt: skip
    ours, base = dig(r, "bus.ours.hops_per_s"), dig(r, "bus.raw.hops_per_s")
    out.append(
        ("bus hop throughput, hops/s", _n(ours, 0), _n(base, 0), _ratio(ours, base), ">= 0.85x")
    )
    ours, base = dig(r, "bus.ours.latency_ms.p50"), dig(r, "bus.raw.latency_ms.p50")
    added = None if ours is None or base is None else ours - base
    out.append(("bus hop latency p50, ms", _n(ours, 2), _n(base, 2), f"+{_n(added, 2)} ms", ""))
    to_started = raw_critical_path_ms(r, hops=3, publishes=0)
    to_completed = raw_critical_path_ms(r, hops=3, publishes=3)
    for label, key, base_ms, target in (
        ("submit -> started", "submit_to_started_ms", to_started, ""),
        ("submit -> completed", "submit_to_completed_ms", to_completed, "p50 <= 15 ms"),
    ):
        p50, p99 = dig(r, f"latency.{key}.p50"), dig(r, f"latency.{key}.p99")
        out.append((f"e2e {label} p50 / p99, ms", f"{_n(p50, 1)} / {_n(p99, 1)}",
                    _n(base_ms, 1), _ratio(p50, base_ms), target))  # fmt: skip
    held = dig(r, "sustained.held") or {}
    publish_rate = dig(r, "raw.acked_publish_per_s")
    want = None if publish_rate is None else 0.06 * publish_rate
    rate = held.get("throughput_per_s") if held.get("passed") else 0.0
    out.append(("sustained workflows/s (p99 < 100 ms, 60 s)", _n(rate, 1), _n(want, 0),
                _ratio(rate, publish_rate), ">= 0.06x raw publishes"))  # fmt: skip
    out.append(("  held run p99 submit -> completed, ms",
                _n(dig(held, "submit_to_completed_ms.p99"), 1), "", "", "< 100"))  # fmt: skip
    out.append(("  CPU per workflow, all services, ms",
                _n(dig(r, "sustained.cpu_ms_per_workflow.total"), 1), "", "", ""))  # fmt: skip
    bare, step = dig(r, "steps.bare_spawn_ms.p50"), dig(r, "steps.local_step_ms.p50")
    out.append(("local runner per step p50, ms (vs bare spawn)", _n(step, 2), _n(bare, 2),
                _ratio(step, bare), "<= 1.5x"))  # fmt: skip
    plain = dig(r, "steps.local_step_unisolated_ms.p50")
    out.append(("  the same, steps not isolated, ms", _n(plain, 2), _n(bare, 2),
                _ratio(plain, bare), "<= 1.5x"))  # fmt: skip
    for label, key in (("", "cache_hit_ms"), (" with outputs", "cache_hit_with_outputs_ms")):
        hit = dig(r, f"steps.{key}.p50")
        out.append((f"cache hit{label} p50, ms (vs running it)", _n(hit, 2), _n(step, 2),
                    _ratio(hit, step), "<= 5 ms"))  # fmt: skip
    ours, base = (
        dig(r, "gateway.gateway.req_per_s"),
        dig(r, "gateway.starlette.req_per_s"),
    )
    out.append(("gateway GET /v1/workflows/{id}, req/s", _n(ours, 0), _n(base, 0), _ratio(ours, base), ">= 0.75x"))  # fmt: skip
    idle, after = r.get("rss_idle_mib") or {}, r.get("rss_after_mib") or {}
    for service, before in idle.items():
        grown = (after.get(service, before) - before) / before * 100
        out.append((f"RSS {service}, MiB idle -> after", f"{before:.1f} -> {after.get(service, 0):.1f}",
                    "", f"{grown:+.1f}%", "< +5%"))  # fmt: skip
    out.append(("aiop up, time to ready, s", _n(r.get("up_to_ready_s"), 1), "", "", ""))
    # Figures from a run with much CPU stolen by the hypervisor are not comparable.
    stolen = r.get("cpu_stolen_share")
    if stolen is not None:
        out.append(("CPU stolen by the hypervisor, whole run", f"{100 * stolen:.1f}%", "", "", ""))
    held_stolen = dig(r, "sustained.held.cpu_stolen_share")
    if held_stolen is not None:
        out.append(("  during the sustained hold", f"{100 * held_stolen:.1f}%", "", "", ""))
    return out


def table(results: dict[str, Any]) -> str:
    header: Row = ("figure", "AIOP", "baseline", "ratio", "target")
    body = [header, *rows(results)]
    widths = [max(len(row[i]) for row in body) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if isolation := results.get("step_isolation"):
        lines.append(f"local steps: {isolation}")  # its cost shows in e2e latency and CPU
    return "\n".join(lines)
