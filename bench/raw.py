"""Plain nats-py baselines: what JetStream gives a Python client with no AIOP layer on top.

Every message is a real AIOP event (a WorkflowAccepted of the noop workflow, with its
CloudEvents headers and a unique ``Nats-Msg-Id``), into a file stream configured like
AIOP's own, on a server that fsyncs every write: the same bytes and the same server work
as the platform's publishes, so the figures are comparable.
"""

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from aiop.contracts.envelope import encode_event
from aiop.contracts.events import WorkflowAccepted
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.servicekit.delivery import DeliveryPolicy
from bench.stats import summary

STREAM = "BENCH"
NOOP = WorkflowSpec(name="noop", steps=[StepSpec(name="noop", run=["true"], cache=False)])
WINDOW = 256  # publishes in flight for the pipelined figures
BATCH = 64  # the fetch size of AIOP's batch consumers, and the hop's workers


def accepted(workflow_id: str) -> tuple[str, bytes, dict[str, str]]:
    """Subject, body and headers of one WorkflowAccepted, as AIOP puts it on the wire."""
    env = encode_event(WorkflowAccepted(workflow_id=workflow_id, spec=NOOP), "aiop/bench")
    return env.subject, env.body, env.headers


async def fresh_stream(js: JetStreamContext, name: str, subjects: list[str]) -> None:
    """A new empty stream with the storage settings of AIOP's streams (streams.py)."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(name)
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            duplicate_window=120.0,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
        )
    )


def consumer_config(durable: str) -> ConsumerConfig:
    """The consumer servicekit creates (``consumer.Reading``), so raw and ours pull the
    same way."""
    policy = DeliveryPolicy()
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=policy.ack_wait_s,
        max_deliver=policy.max_deliver,
        max_ack_pending=policy.max_ack_pending,
    )


async def publish_sequential(js: JetStreamContext, seconds: float) -> dict[str, object]:
    """One acked publish at a time: per-publish latency, and the rate that gives."""
    subject, body, headers = accepted("seq")
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    i = 0
    while (began := time.perf_counter()) < end:
        await js.publish(subject, body, headers={**headers, "Nats-Msg-Id": f"seq-{i}"})
        latencies.append((time.perf_counter() - began) * 1000)
        i += 1
    return {"per_s": round(len(latencies) / seconds, 1), "latency_ms": summary(latencies)}


async def publish_pipelined(
    js: JetStreamContext, seconds: float | None = None, count: int | None = None, tag: str = "pipe"
) -> float:
    """Publishes with up to WINDOW acks outstanding, for ``seconds`` or ``count`` messages;
    returns acked publishes per second."""
    pending: deque[asyncio.Future[PubAck]] = deque()
    began = time.perf_counter()
    end = began + (seconds or float("inf"))
    i = 0
    while time.perf_counter() < end and (count is None or i < count):
        subject, body, headers = accepted(f"{tag}{i}")
        pending.append(await js.publish_async(subject, body, headers=headers))
        if len(pending) >= WINDOW:
            await pending.popleft()
        i += 1
    await asyncio.gather(*pending)
    return i / (time.perf_counter() - began)


async def pull_consume(nc: Client, count: int, *, sync_ack: bool) -> float:
    """Messages/s a durable pull consumer fetches and acks from a stream holding ``count``."""
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        "aiop.workflow.accepted.v1.>", f"pull-{int(sync_ack)}", stream=STREAM,
        config=consumer_config(f"pull-{int(sync_ack)}"),
    )  # fmt: skip
    began = time.perf_counter()
    done = 0
    while done < count:
        for msg in await psub.fetch(BATCH, timeout=5.0):
            await (msg.ack_sync() if sync_ack else msg.ack())
            done += 1
    await nc.flush()  # plain acks are buffered: count them once the server has them
    elapsed = time.perf_counter() - began
    await psub.unsubscribe()
    return count / elapsed


# -- the consume-and-publish hop -------------------------------------------------------

HOP_IN = "aiop.workflow.accepted.v1"
HOP_OUT = "aiop.workflow.queued.v1"
ROOT = Path(__file__).resolve().parents[1]


async def serve_raw_hop(nats_url: str, stream: str) -> None:
    """Pull from HOP_IN, publish (acked) to HOP_OUT, then ack the input: a service's hop.

    Structured like FastStream's pull subscriber (fetch a batch, handle its messages
    concurrently, fetch again) so the only difference from ours is the AIOP layer.
    Runs until cancelled; prints "ready" once its consumer exists.
    """
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        f"{HOP_IN}.>", "raw-hop", stream=stream, config=consumer_config("raw-hop")
    )

    async def handle(msg: Msg) -> None:
        workflow_id = msg.subject.rsplit(".", 1)[1]
        headers = {**(msg.headers or {}), "Nats-Msg-Id": f"queued-{workflow_id}"}
        await js.publish(
            f"{HOP_OUT}.{workflow_id}", msg.data, headers=headers, stream=stream, timeout=5.0
        )
        await msg.ack()

    print("ready", flush=True)
    while True:
        try:
            msgs = await psub.fetch(BATCH, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        await asyncio.gather(*(handle(m) for m in msgs))


class HopProcess:
    """A hop in its own process, as a service runs: the driver's work (publishing inputs,
    watching outputs) never shares its event loop or its CPU accounting. Its stdout and
    stderr go to a file, as a service's do under ``aiop up``."""

    def __init__(self, module: str, nats_url: str, stream: str, durable: str, *args: str) -> None:
        self.argv = [sys.executable, "-m", module, "hop", nats_url, stream, *args]
        self.nats_url, self.stream, self.durable = nats_url, stream, durable
        self.log = Path(tempfile.mkdtemp(prefix="bench-hop-")) / "hop.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        for _ in range(6000):
            if b"ready\n" in self.log.read_bytes():
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.01)
        raise RuntimeError(f"{self.argv} did not start:\n{self.log.read_text()[-2000:]}")

    def cpu_s(self) -> float:
        """User + system CPU seconds the hop process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        await asyncio.wait_for(self.process.wait(), 30)
        nc = await nats.connect(self.nats_url)
        await nc.jetstream().delete_consumer(self.stream, self.durable)
        await nc.close()


async def drive_hop(
    nats_url: str,
    hop: HopProcess,
    seconds: float,
    count: int,
    tag: str,
    samples: list[float] | None = None,
) -> dict[str, object]:
    """Throughput, CPU and latency of ``hop``, measured the same way for raw and ours.

    Throughput: ``count`` inputs are stored first, then the hop starts and drains them;
    the rate is taken from the 5th percentile output to the last, so consumer startup is
    not counted. Latency: with the hop idle, one input at a time, from just before its
    publish until its output arrives on a core subscription (also appended to ``samples``).
    """
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    seen: dict[str, float] = {}
    waiters: dict[str, asyncio.Future[None]] = {}

    async def on_output(msg: Msg) -> None:
        key = msg.subject.rsplit(".", 1)[1]
        seen[key] = time.perf_counter()
        waiter = waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    await nc.subscribe(f"{HOP_OUT}.>", cb=on_output)
    await nc.flush()
    await publish_pipelined(js, count=count, tag=f"{tag}t")
    try:
        await hop.start()
        cpu_before = hop.cpu_s()
        give_up = time.perf_counter() + 120  # a stuck hop fails the run instead of hanging it
        while len(seen) < count:
            if time.perf_counter() > give_up:
                raise RuntimeError(f"hop {tag}: {len(seen)}/{count} outputs after 120 s")
            await asyncio.sleep(0.01)
        cpu = hop.cpu_s() - cpu_before
        times = sorted(seen.values())
        first = count // 20
        rate = (count - 1 - first) / (times[-1] - times[first])
        latencies: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            key = f"{tag}l{len(latencies)}"
            arrived = waiters[key] = asyncio.get_running_loop().create_future()
            subject, body, headers = accepted(key)
            began = time.perf_counter()
            await js.publish(subject, body, headers=headers)
            await asyncio.wait_for(arrived, 10)
            latencies.append((seen[key] - began) * 1000)
    finally:
        if hop.process is not None:
            await hop.stop()
        await nc.close()
    if samples is not None:
        samples.extend(latencies)
    return {
        "hops_per_s": round(rate, 1),
        "hop_cpu_us_per_hop": round(cpu / count * 1e6, 1),
        "latency_ms": summary(latencies),
        "hops": count,
        "latency_samples": len(latencies),
        "hop_log_bytes": hop.log.stat().st_size,  # per-message logging would show here
    }


async def raw_hop(
    nats_url: str,
    stream: str,
    seconds: float,
    count: int,
    samples: list[float] | None = None,
    tag: str = "raw",
) -> dict[str, object]:
    """The raw hop on ``stream`` (which must hold HOP_IN and HOP_OUT subjects); ``tag``
    keeps workflow ids (and so Nats-Msg-Ids) of repeated runs distinct."""
    hop = HopProcess("bench.raw", nats_url, stream, "raw-hop")
    return await drive_hop(nats_url, hop, seconds, count, tag, samples)


async def measure(nats_url: str, seconds: float = 5.0) -> dict[str, object]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await fresh_stream(js, STREAM, ["aiop.workflow.>"])
    await publish_pipelined(js, seconds=0.5, tag="warm")  # connection and store warm-up
    sequential = await publish_sequential(js, seconds)
    pipelined = await publish_pipelined(js, seconds=seconds)

    # Consume from a stream holding exactly the messages to read.
    await fresh_stream(js, STREAM, ["aiop.workflow.>"])
    fill = max(1000, int(pipelined * seconds / 2))
    await publish_pipelined(js, count=fill, tag="fill")
    consume = await pull_consume(nc, fill, sync_ack=False)
    consume_sync = await pull_consume(nc, fill, sync_ack=True)

    await fresh_stream(js, STREAM, ["aiop.workflow.>"])
    hop = await raw_hop(nats_url, STREAM, seconds / 2, count=max(500, int(pipelined * seconds / 4)))
    await js.delete_stream(STREAM)
    await nc.close()
    return {
        "payload_bytes": len(accepted("x")[1]),
        "window": WINDOW,
        "acked_publish_per_s": round(pipelined, 1),
        "acked_publish_seq_per_s": sequential["per_s"],
        "acked_publish_seq_latency_ms": sequential["latency_ms"],
        "pull_consume_ack_per_s": round(consume, 1),
        "pull_consume_ack_sync_per_s": round(consume_sync, 1),
        "consume_messages": fill,
        "hop": hop,
    }


if __name__ == "__main__":
    from aiop.devstack import NatsServer

    if sys.argv[1:2] == ["hop"]:  # the hop process HopProcess starts
        asyncio.run(serve_raw_hop(*sys.argv[2:4]))
        sys.exit()
    server = NatsServer(Path(tempfile.mkdtemp(prefix="bench-raw-"))).start()
    try:
        print(json.dumps(asyncio.run(measure(server.url)), indent=2))
    finally:
        server.stop()
