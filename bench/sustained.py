"""Sustained workflows per second through all six services at a fixed arrival rate.

Arrivals are open-loop: workflow ``i`` is submitted at ``start + i / rate`` whether or not
earlier ones finished, so a platform that falls behind shows it as latency instead of
quietly slowing the generator down. A rate passes when every workflow completes and the
p99 of submit -> completed stays under the bound.
"""

import asyncio
import time

import httpx

from bench.latency import NOOP, Watch, submit
from bench.platform import Platform
from bench.stats import percentile, summary

P99_BOUND_MS = 100.0
DRAIN_S = 30.0


async def run_at(platform: Platform, rate: float, seconds: float) -> dict[str, object]:
    """Submit ``rate`` no-op workflows per second for ``seconds``; how they fared."""
    nc = await platform.connect()
    watch = Watch()
    await watch.attach(nc)
    submitted: dict[str, float] = {}
    answered: list[float] = []  # POST round trips: the gateway's share of the latency
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=platform.gateway_url, headers=platform.headers(), timeout=30, limits=limits
    ) as http:

        async def one() -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                workflow_id = await submit(http, NOOP)
            except httpx.HTTPError:
                errors += 1
                return
            submitted[workflow_id] = began
            answered.append((time.perf_counter() - began) * 1000)

        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        offered_s = time.perf_counter() - start
    waiters = [watch.waiter(w) for w in submitted]
    if waiters:
        await asyncio.wait(waiters, timeout=DRAIN_S)
    await nc.close()
    finished = [w for w in submitted if w in watch.finished]
    latencies = [(watch.finished[w] - submitted[w]) * 1000 for w in finished]
    last = max((watch.finished[w] for w in finished), default=start)
    return {
        "rate": rate,
        "seconds": round(offered_s, 2),
        "accepted": len(submitted),
        "completed": len(finished) - len(watch.failed & set(finished)),
        "failed": len(watch.failed & set(finished)),
        "unfinished": len(submitted) - len(finished),
        "submit_errors": errors,
        "throughput_per_s": round(len(finished) / max(last - start, 1e-9), 1),
        "submit_to_completed_ms": summary(latencies),
        "post_answered_ms": summary(answered),
        "passed": _passed(len(submitted), len(finished), errors, latencies),
    }


def _passed(accepted: int, finished: int, errors: int, latencies: list[float]) -> bool:
    return (
        errors == 0
        and accepted > 0
        and finished == accepted
        and percentile(latencies, 99) < P99_BOUND_MS
    )


async def search(
    platform: Platform, rates: list[float], step_s: float = 8.0
) -> list[dict[str, object]]:
    """Short steps up ``rates`` (ascending) until one fails; every step's result."""
    steps = []
    await run_at(platform, rates[0], 3.0)  # warm up: connections, caches, first fetches
    for rate in rates:
        result = await run_at(platform, rate, step_s)
        steps.append(result)
        print(
            f"  sustained search {rate:>6.0f}/s  p99 {result['submit_to_completed_ms']['p99']:>8.1f} ms"  # type: ignore[index]
            f"  {'pass' if result['passed'] else 'fail'}",
            flush=True,
        )
        if not result["passed"]:
            break
    return steps
