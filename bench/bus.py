"""AIOP's bus layer against raw nats-py: the same consume-and-publish hop, both ways.

Ours is wired as a service wires itself (distributor's main): a ``Service`` with a trace
directory, because ``aiop up`` sets AIOP_TRACE_DIR for every service, whose consumer
(servicekit's own pull loop) hands a decoded WorkflowAccepted to a handler that publishes
a WorkflowQueued through the service's bus. Both hops run in their own process on the
AIOP stream, driven and timed by ``bench.raw.drive_hop``.
"""

import asyncio
import functools
import json
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

from aiop.contracts.events import WorkflowAccepted, WorkflowQueued
from aiop.contracts.subjects import STREAM_EVENTS
from aiop.servicekit import Service, ServiceSettings
from aiop.servicekit.streams import ensure_streams
from bench.raw import BATCH, HOP_IN, HopProcess, drive_hop, raw_hop
from bench.stats import summary

SERVICE = "bench-hop"


async def serve_bus_hop(nats_url: str, stream: str, tracing: str) -> None:
    """Our hop; ``tracing`` is "file" (as under ``aiop up``) or "none" (a provider with
    no exporter: what a service gets with neither AIOP_TRACE_DIR nor an OTLP endpoint)."""
    trace_dir = Path(tempfile.mkdtemp(prefix="bench-traces-")) if tracing == "file" else None
    svc = Service(SERVICE, ServiceSettings(nats_url=nats_url, trace_dir=trace_dir))
    svc.publishes(WorkflowQueued)

    async def hop(event: WorkflowAccepted) -> None:
        await svc.bus.publish(WorkflowQueued(workflow_id=event.workflow_id, reason="bench"))

    # As many in flight as the raw hop keeps (one fetched batch), so the two differ
    # only in what each message costs.
    assert stream == STREAM_EVENTS
    assert HOP_IN == WorkflowAccepted.TYPE
    svc.consume(WorkflowAccepted, hop, durable=SERVICE, workers=BATCH)
    await svc.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def bus_hop(
    nats_url: str,
    stream: str,
    seconds: float,
    count: int,
    samples: list[float] | None = None,
    tag: str = "bus",
    tracing: str = "file",
) -> dict[str, object]:
    hop = HopProcess("bench.bus", nats_url, stream, SERVICE, tracing)
    return await drive_hop(nats_url, hop, seconds, count, tag, samples)


VARIANTS: dict[str, Callable[..., Awaitable[dict[str, object]]]] = {
    "raw": raw_hop,
    "ours": bus_hop,
    "ours_no_export": functools.partial(bus_hop, tracing="none"),
}


async def measure(nats_url: str, seconds: float = 5.0, rounds: int = 3) -> dict[str, object]:
    """Raw, ours and ours without span export, interleaved over ``rounds`` rounds so load
    from anything else on the machine falls on all of them alike; medians are reported."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)

    # A short raw run warms the server's store and sizes the real runs: each drains what
    # raw drains in about seconds/4.
    calibration = await raw_hop(nats_url, STREAM_EVENTS, 0.2, count=1000, tag="calib")
    count = max(1000, int(float(calibration["hops_per_s"]) * seconds / 4))  # type: ignore[arg-type]

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(rounds):
        for name, hop in VARIANTS.items():
            await js.purge_stream(STREAM_EVENTS)  # each hop drains only its own inputs
            result = await hop(
                nats_url, STREAM_EVENTS, seconds / 4, count, samples[name], tag=f"{name}{r}"
            )
            runs[name].append(result)
    await nc.close()

    figures: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        figures[name] = {
            "hops_per_s": statistics.median(x["hops_per_s"] for x in results),
            "hops_per_s_rounds": [x["hops_per_s"] for x in results],
            "hop_cpu_us_per_hop": statistics.median(x["hop_cpu_us_per_hop"] for x in results),
            "latency_ms": summary(samples[name]),
            "latency_samples": len(samples[name]),
            "hops_per_round": count,
            "hop_log_bytes": max(x["hop_log_bytes"] for x in results),
        }
    raw, ours = figures["raw"], figures["ours"]
    return {
        **figures,
        "rounds": rounds,
        "throughput_ratio": round(ours["hops_per_s"] / raw["hops_per_s"], 3),
        "cpu_per_hop_ratio": round(ours["hop_cpu_us_per_hop"] / raw["hop_cpu_us_per_hop"], 2),
        "added_latency_ms_p50": round(ours["latency_ms"]["p50"] - raw["latency_ms"]["p50"], 3),
        "added_latency_ms_p99": round(ours["latency_ms"]["p99"] - raw["latency_ms"]["p99"], 3),
        "target_throughput_ratio": 0.85,
    }


if __name__ == "__main__":
    from aiop.devstack import NatsServer

    if sys.argv[1:2] == ["hop"]:  # the hop process HopProcess starts
        asyncio.run(serve_bus_hop(*sys.argv[2:5]))
        sys.exit()
    server = NatsServer(Path(tempfile.mkdtemp(prefix="bench-bus-"))).start()
    try:
        print(json.dumps(asyncio.run(measure(server.url)), indent=2))
    finally:
        server.stop()
