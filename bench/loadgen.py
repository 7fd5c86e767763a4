"""A small closed-loop HTTP/1.1 load generator (wrk is not available here).

It runs in its own process (``measure`` starts it), so it never shares an event loop with
what it measures: K keep-alive connections, each sending one GET and reading the whole
response (by Content-Length) before sending the next. Only 2xx responses count as
throughput; any other status, or a broken connection, is an error.
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stats import summary


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self.counting = False


async def worker(host: str, port: int, request: bytes, tally: Tally, until: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while time.perf_counter() < until:
        began = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise ValueError("chunked responses are not supported")
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status, close = 0, True  # a broken connection is an error, then reconnect
        if tally.counting:
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                tally.ok += 1
                tally.latencies.append((time.perf_counter() - began) * 1000)
            else:
                tally.errors += 1
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


async def run(
    url: str, headers: dict[str, str], seconds: float, connections: int, warmup: float
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    tally = Tally()
    until = time.perf_counter() + warmup + seconds
    workers = [
        asyncio.create_task(worker(host, port, request, tally, until)) for _ in range(connections)
    ]
    await asyncio.sleep(warmup)  # connections open and servers warm before counting
    tally.counting = True
    cpu0, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "req_per_s": round(tally.ok / elapsed, 1),
        "ok": tally.ok,
        "errors": tally.errors,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "latency_ms": summary(tally.latencies),
        "connections": connections,
        "seconds": round(elapsed, 2),
        "loadgen_cpu_fraction": round(cpu / elapsed, 3),  # of one core
    }


def measure(
    url: str,
    headers: dict[str, str] | None = None,
    seconds: float = 10.0,
    connections: int = 16,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Load ``url`` from a separate process; returns its figures."""
    argv = [sys.executable, "-m", "bench.loadgen", url, "--seconds", str(seconds)]
    argv += ["--connections", str(connections), "--warmup", str(warmup)]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=True, timeout=seconds + 120
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    # uvloop: the generator should spend as little of the shared CPU as it can.
    import uvloop

    result = uvloop.run(run(args.url, headers, args.seconds, args.connections, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
