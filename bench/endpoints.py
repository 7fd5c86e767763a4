"""Request/reply answered by a nats.micro endpoint against a FastStream core subscriber.

    uv run python -m bench.endpoints

The answering side runs in its own process, echoing a 200-byte body, with no tracing on
either; eight concurrent requesters in this process ask it. Printed per round: requests
per second and the answering process's CPU per request. ADR 0008 cites these figures for
keeping endpoints on nats.micro.
"""

import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

from bench.gateway import cpu_s

SUBJECT = "bench.endpoint"
BODY = b"x" * 200
REQUESTERS = 8


async def serve_micro(url: str) -> None:
    from nats.micro import add_service
    from nats.micro.request import Request

    nc = await nats.connect(url)
    svc = await add_service(nc, name="bench-endpoint", version="0.1.0")

    async def echo(req: Request) -> None:
        await req.respond(req.data)

    await svc.add_endpoint(name="echo", subject=SUBJECT, handler=echo)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def serve_faststream(url: str) -> None:
    from faststream.nats import NatsBroker, NatsMessage

    async def the_message(msg: NatsMessage) -> NatsMessage:
        return msg

    # Configured as servicekit configures its broker: no dependency injection, quiet logs.
    broker = NatsBroker(url, apply_types=False, decoder=the_message, log_level=logging.DEBUG)

    @broker.subscriber(SUBJECT, queue="bench")
    async def echo(msg: NatsMessage) -> bytes:
        return msg.body

    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def measure(url: str, pid: int, count: int = 5000) -> tuple[float, float]:
    """(requests per second, µs of process ``pid``'s CPU per request)."""
    nc = await nats.connect(url)
    for _ in range(200):  # warm-up
        await nc.request(SUBJECT, BODY, timeout=2)

    async def requester(n: int) -> None:
        for _ in range(n):
            await nc.request(SUBJECT, BODY, timeout=2)

    cpu0, t0 = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(requester(count // REQUESTERS) for _ in range(REQUESTERS)))
    took, cpu = time.perf_counter() - t0, cpu_s(pid) - cpu0
    await nc.close()
    return count / took, cpu / count * 1e6


def round_of(url: str, kind: str) -> tuple[float, float]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.endpoints", "serve", kind, url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        return asyncio.run(measure(url, server.pid))
    finally:
        server.kill()
        server.wait()


def main() -> None:
    from aiop.devstack import NatsServer

    server = NatsServer(Path(tempfile.mkdtemp(prefix="bench-endpoints-"))).start()
    try:
        for _ in range(3):
            for kind in ("micro", "faststream"):
                per_s, cpu_us = round_of(server.url, kind)
                print(f"{kind:10} {per_s:8.0f} req/s  {cpu_us:5.0f} µs CPU per request")
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serving = {"micro": serve_micro, "faststream": serve_faststream}[sys.argv[2]]
        asyncio.run(serving(sys.argv[3]))
    else:
        main()
