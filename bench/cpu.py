"""CPU time each service spends, read from /proc: the cost of one workflow, per service."""

import os
from pathlib import Path

from bench.platform import SERVICES, Platform

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def snapshot(platform: Platform) -> dict[str, float]:
    return {service: cpu_seconds(platform.pid_of(service)) for service in SERVICES}


def per_workflow_ms(
    before: dict[str, float], after: dict[str, float], workflows: int
) -> dict[str, float]:
    used = {s: (after[s] - before[s]) * 1000 / workflows for s in before}
    used["total"] = sum(used.values())
    return {s: round(v, 2) for s, v in used.items()}
