"""A workflow's step output, read from stream AIOP_LOGS through an ordered consumer.

Each read opens its own ordered consumer filtered to the workflow's subject, starting
after the last sequence the client has (``after``), and deletes it when the client is
done. The stream's sequence numbers are the entries' ids: a client that reconnects
with the last one it saw continues exactly where it stopped.
"""

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.contracts.envelope import UndecodableEvent, decode_event
from aiop.contracts.events import StepOutputAppended
from aiop.contracts.subjects import STREAM_LOGS
from aiop.servicekit.tasks import finish

BATCH_WAIT_S = 0.5  # a message already pending arrives well within this


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One chunk of a step's output, as the logs endpoint serves it."""

    seq: int  # its sequence in the logs stream: the id to resume after
    step: str
    stream: str  # "stdout" | "stderr"
    text: str
    attempt: int
    try_number: int
    time: datetime


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GET /v1/workflows/{id}/logs`` answers without ``follow``."""

    workflow_id: str
    state: str  # the workflow's state when it was read
    entries: list[LogEntry]


class LogReader:
    def __init__(self, sub: JetStreamContext.PushSubscription, step: str | None) -> None:
        self._sub = sub
        self._step = step

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, js: JetStreamContext, workflow_id: str, step: str | None, after: int = 0
    ) -> AsyncIterator["LogReader"]:
        start = (
            ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
            if after
            else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        sub = await js.subscribe(
            StepOutputAppended.filter(workflow_id=workflow_id),
            stream=STREAM_LOGS,
            ordered_consumer=True,
            config=start,
        )
        try:
            yield cls(sub, step)
        finally:
            await finish(_unsubscribe(sub))

    async def stored(self) -> list[LogEntry]:
        """Every entry stored now (from where the reader started)."""
        entries: list[LogEntry] = []
        info = await self._sub.consumer_info()
        pending = (info.num_pending or 0) + self._sub.pending_msgs
        while pending > 0:
            msg = await self._sub.next_msg(timeout=BATCH_WAIT_S)
            pending = msg.metadata.num_pending
            if (entry := self._entry(msg)) is not None:
                entries.append(entry)
        return entries

    async def next(self, timeout: float) -> LogEntry | None:
        """The next entry for this reader's step, or None when none came in ``timeout``."""
        try:
            msg = await self._sub.next_msg(timeout=timeout)
        except TimeoutError:
            return None
        return self._entry(msg)

    def _entry(self, msg: Msg) -> LogEntry | None:
        try:
            event = decode_event(msg.data, StepOutputAppended)
        except UndecodableEvent:
            return None  # not output of a known shape: nothing a reader can show
        if self._step is not None and event.step != self._step:
            return None
        return LogEntry(
            seq=msg.metadata.sequence.stream, step=event.step, stream=event.stream,
            text=event.text, attempt=event.attempt, try_number=event.try_number,
            time=event.occurred_at,
        )  # fmt: skip


async def _unsubscribe(sub: JetStreamContext.PushSubscription) -> None:
    with contextlib.suppress(Exception):  # the consumer also expires by itself
        await sub.unsubscribe()
