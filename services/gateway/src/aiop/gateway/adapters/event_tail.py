"""The live tail of the event streams (``GET /v1/stream``): one ordered consumer per
stream, filtered as ``aiop tail`` filters (``contracts.patterns``), merged into one
queue as the messages arrive.

Each stream keeps its own sequence; there is no order across streams. Where the tail
is in each stream is its position: a client resuming with the last id it saw
(``EventTail.event_id``) starts each stream just after it. A stream the id does not name starts
at ``since`` if the client gave one (it asks again with the same query), else at the
end of the stream as it was when the tail opened.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.contracts.subjects import STREAM_DLQ, STREAM_EVENTS, STREAM_LOGS
from aiop.servicekit.tasks import cancel_and_wait, finish

# What the tail may read: the workflows' events, their output and the dead letters,
# each message of which belongs to a workflow or to the platform (``audience``). Never a
# work queue (reading takes its messages away), nor external events or agents' reports.
TAILED = (STREAM_EVENTS, STREAM_LOGS, STREAM_DLQ)
DEFAULT_PATTERNS = ("aiop.workflow.>", "aiop.step.>", "aiop.executor.circuit.>", "aiop.dlq.>")
QUEUE = 256  # messages read ahead of the client; a reader waits for it beyond that
WAIT_S = 5.0  # a reader's wait for its next message before it looks again


class TailEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The data of one event of the live tail."""

    stream: str
    seq: int  # its sequence in ``stream``
    subject: str
    type: str  # the CloudEvents type: aiop.step.started.v1, ...
    time: datetime
    workflow_id: str | None
    summary: str  # one line, as ``aiop tail`` prints it
    event: Any  # the event as published; its text when it is not JSON


class TailPage(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/stream`` asked for JSON: the events stored (from ``since``, or after the
    id sent back) up to the first quiet moment."""

    events: list[TailEvent]
    last_event_id: str  # send back as Last-Event-ID to go on from here


class Closed(Exception):
    """A reader stopped: the connection closed (the gateway stops) or its consumer broke."""


def positions_from(last_event_id: str, streams: list[str]) -> dict[str, int]:
    """Where to resume each of ``streams``, from a ``Last-Event-ID`` sent back; what
    cannot be read is left out (that stream starts afresh)."""
    found: dict[str, int] = {}
    for part in last_event_id.split(","):
        stream, _, seq = part.strip().rpartition(":")
        if not stream and len(streams) == 1:
            stream = streams[0]
        if stream in streams and seq.isdigit() and int(seq) < 2**63:
            found[stream] = int(seq)
    return found


class EventTail:
    def __init__(self, streams: list[str]) -> None:
        self.streams = streams
        self.positions: dict[str, int] = {}  # stream -> the last seq handed on, or the start
        self._queue: asyncio.Queue[Msg | Closed] = asyncio.Queue(maxsize=QUEUE)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        js: JetStreamContext,
        filters: dict[str, list[str]],
        since: datetime | None,
        after: dict[str, int],
    ) -> AsyncIterator["EventTail"]:
        tail = cls(list(filters))
        subs: list[JetStreamContext.PushSubscription] = []
        readers: list[asyncio.Task[None]] = []
        try:
            for stream, subjects in filters.items():
                config = await tail._start(js, stream, since, after.get(stream))
                config.filter_subjects = subjects
                sub = await js.subscribe(
                    subjects[0], stream=stream, ordered_consumer=True, config=config
                )
                subs.append(sub)
                readers.append(asyncio.create_task(tail._read(sub), name=f"tail {stream}"))
            yield tail
        finally:
            # Shielded: a streaming response is ended by a cancel that is delivered again
            # at every await, which would leave the subscriptions behind with their
            # messages (and hold the connection's drain at stop until its timeout).
            await finish(_close(readers, subs))

    def event_id(self) -> str:
        """The SSE id: the sequence alone when one stream is read; ``AIOP:12,AIOP_DLQ:3``
        when several are, naming those whose position is known."""
        if len(self.streams) == 1:
            return str(self.positions.get(self.streams[0], 0))
        return ",".join(f"{stream}:{seq}" for stream, seq in sorted(self.positions.items()))

    async def _start(
        self, js: JetStreamContext, stream: str, since: datetime | None, after: int | None
    ) -> ConsumerConfig:
        """Where ``stream`` is read from, its position set to match."""
        if after is not None:
            self.positions[stream] = after
        elif since is not None:  # its position is known once a message came
            return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        else:  # the end as it is now, named by its sequence: resumable from the first id
            self.positions[stream] = (await js.stream_info(stream)).state.last_seq
        return ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.positions[stream] + 1,
        )

    async def _read(self, sub: JetStreamContext.PushSubscription) -> None:
        while True:
            try:
                msg = await sub.next_msg(timeout=WAIT_S)
            except TimeoutError:
                continue
            except nats.errors.Error as exc:
                await self._queue.put(Closed(str(exc)))
                return
            await self._queue.put(msg)

    async def next(self, timeout: float) -> Msg | None:
        """The next message not handed on before, or None when none came in ``timeout``;
        Closed when a reader stopped."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    item = await self._queue.get()
                    if isinstance(item, Closed):
                        raise item
                    stream, seq = item.metadata.stream, item.metadata.sequence.stream
                    # An ordered consumer recreated after a reconnect may deliver again.
                    if seq > self.positions.get(stream, 0):
                        self.positions[stream] = seq
                        return item
        except TimeoutError:
            return None


async def _close(
    readers: list[asyncio.Task[None]], subs: list[JetStreamContext.PushSubscription]
) -> None:
    await cancel_and_wait(readers)
    for sub in subs:
        with contextlib.suppress(Exception):  # the consumer also expires by itself
            await sub.unsubscribe()
