"""A workflow's events, read from stream AIOP through an ordered consumer.

Each read opens its own ordered consumer, filtered to the subjects that carry the
workflow's id and starting after the last sequence the client has (``after``), and
deletes it when the client is done. The stream's sequence numbers are the entries' ids,
as for logs: a client that reconnects with the last one it saw misses nothing.
"""

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.contracts.events import (
    EVENT_TYPES,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRejected,
)
from aiop.contracts.subjects import STREAM_EVENTS, stream_for
from aiop.servicekit.tasks import finish

BATCH_WAIT_S = 0.5  # a message already pending arrives well within this

# The events about one workflow that stream AIOP keeps: what the gateway follows.
FOLLOWED = tuple(
    cls
    for cls in EVENT_TYPES.values()
    if "workflow_id" in cls.ROUTING and stream_for(cls.TYPE) == STREAM_EVENTS
)
# The first of these to arrive ends the workflow (task-manager keeps the first result).
ENDINGS = {
    WorkflowCompleted.TYPE: "succeeded",
    WorkflowFailed.TYPE: "failed",
    WorkflowCancelled.TYPE: "cancelled",
    WorkflowRejected.TYPE: "rejected",
}


class WorkflowEventEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a workflow, as the events endpoint serves it."""

    seq: int  # its sequence in stream AIOP: the id to resume after
    type: str  # the CloudEvents type, e.g. aiop.step.started.v1
    time: datetime
    event: dict[str, Any]  # the event as published


class WorkflowEventPage(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GET /v1/workflows/{id}/events`` answers without ``follow``."""

    workflow_id: str
    state: str  # the workflow's state when it was read
    events: list[WorkflowEventEntry]


def subjects_of(workflow_id: str) -> list[str]:
    """One filter per event type, its routing tokens fixed to ``workflow_id`` where the
    workflow id goes and left open elsewhere (a WorkflowRequested's pool)."""
    return [
        ".".join([cls.TYPE, *(workflow_id if n == "workflow_id" else "*" for n in cls.ROUTING)])
        for cls in FOLLOWED
    ]


class WorkflowEventReader:
    def __init__(self, sub: JetStreamContext.PushSubscription) -> None:
        self._sub = sub

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, js: JetStreamContext, workflow_id: str, after: int = 0
    ) -> AsyncIterator["WorkflowEventReader"]:
        subjects = subjects_of(workflow_id)
        start = (
            ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
            if after
            else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        start.filter_subjects = subjects
        sub = await js.subscribe(
            subjects[0], stream=STREAM_EVENTS, ordered_consumer=True, config=start
        )
        try:
            yield cls(sub)
        finally:
            await finish(_unsubscribe(sub))

    async def stored(self) -> list[WorkflowEventEntry]:
        """Every event stored now (from where the reader started)."""
        entries: list[WorkflowEventEntry] = []
        pending = await self.pending()
        while pending > 0:
            msg = await self._sub.next_msg(timeout=BATCH_WAIT_S)
            pending = msg.metadata.num_pending
            if (entry := _entry(msg)) is not None:
                entries.append(entry)
        return entries

    async def pending(self) -> int:
        """How many of the workflow's events the stream holds that were not read yet."""
        info = await self._sub.consumer_info()
        return (info.num_pending or 0) + self._sub.pending_msgs

    async def next(self, timeout: float) -> WorkflowEventEntry | None:
        """The next event, or None when none came in ``timeout``."""
        try:
            msg = await self._sub.next_msg(timeout=timeout)
        except TimeoutError:
            return None
        return _entry(msg)


def _entry(msg: Msg) -> WorkflowEventEntry | None:
    try:
        event = msgspec.json.decode(msg.data, type=dict[str, Any])
        time = msgspec.convert(event["occurred_at"], datetime)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
        return None  # not an event of a known shape: nothing a reader can show
    kind = ".".join(msg.subject.split(".")[:4])  # an event's type is its subject's stem
    return WorkflowEventEntry(seq=msg.metadata.sequence.stream, type=kind, time=time, event=event)


async def _unsubscribe(sub: JetStreamContext.PushSubscription) -> None:
    with contextlib.suppress(Exception):  # the consumer also expires by itself
        await sub.unsubscribe()
