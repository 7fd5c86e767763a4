"""The last hour's throughput and latency as SVG shapes: bars of runs finished per
minute (failed ones on top, in their own colour) and the p50 and p95 latency as lines
over them. Drawn here so the page needs no charting library."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WIDTH = 600
HEIGHT = 120
PAD = 4


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    failed_y: float
    failed_h: float
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    p50: str  # SVG polyline points
    p95: str
    most: int  # runs in the busiest minute
    slowest_ms: float
    width: int = WIDTH
    height: int = HEIGHT


def throughput(stats: Mapping[str, Any]) -> Chart:
    series = list(stats.get("series") or [])
    n = max(1, len(series))
    slot = (WIDTH - 2 * PAD) / n
    most = max((int(b.get("finished", 0)) for b in series), default=0) or 1
    slowest = max((float(b.get("p95_ms") or b.get("p50_ms") or 0) for b in series), default=0.0)
    scale = (HEIGHT - 2 * PAD) / most
    bars: list[Bar] = []
    p50: list[str] = []
    p95: list[str] = []
    for i, bucket in enumerate(series):
        done = int(bucket.get("finished", 0))
        failed = min(done, int(bucket.get("failed", 0)))
        x = PAD + i * slot
        ok_h, failed_h = (done - failed) * scale, failed * scale
        base = HEIGHT - PAD
        title = f"{str(bucket.get('at', ''))[11:16]}: {done} finished, {failed} failed"
        if bucket.get("p50_ms") is not None:
            title += f", p50 {bucket['p50_ms']:.0f} ms, p95 {bucket.get('p95_ms') or 0:.0f} ms"
        bars.append(Bar(round(x + 1, 1), round(max(1.0, slot - 2), 1), round(base - ok_h, 1),
                        round(ok_h, 1), round(base - ok_h - failed_h, 1), round(failed_h, 1),
                        title))  # fmt: skip
        for points, key in ((p50, "p50_ms"), (p95, "p95_ms")):
            if bucket.get(key) is not None and slowest > 0:
                y = HEIGHT - PAD - float(bucket[key]) / slowest * (HEIGHT - 2 * PAD)
                points.append(f"{x + slot / 2:.1f},{y:.1f}")
    return Chart(bars, " ".join(p50), " ".join(p95), most if series else 0, slowest)
