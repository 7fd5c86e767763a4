"""``aiop tail``: the live event stream, filtered, optionally replayed from the past.

Each stream is read through one consumer filtering on all of its patterns at once, so a
run's ``step.started`` lines come before its ``workflow.failed`` line, as the stream holds
them. There is no order across streams (AIOP, AIOP_LOGS, AIOP_DLQ, ...): each keeps its
own sequence, and their lines interleave as they arrive.

Which streams and filters it reads (``contracts.patterns``) and each line's summary
(``contracts.summaries``) are shared with the gateway's live tail, ``GET /v1/stream``.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import datetime

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from aiop.cli.render import event_line
from aiop.contracts.envelope import UndecodableEvent, decode_event, event_type_of
from aiop.contracts.patterns import matches, streams_for
from aiop.contracts.subjects import check_token, workflow_id_of
from aiop.contracts.summaries import summary
from aiop.servicekit.permissions import inbox_prefix

BATCH = 256  # messages per pull request
WAIT = 5.0  # seconds a pull request waits for messages
HEARTBEAT = 1.0  # the server's sign of life during a quiet pull request
RETRY = 0.5  # seconds between attempts to recreate a lost consumer


class StreamReader:
    """One stream's matching messages in stream order, read through an ephemeral pull
    consumer. nats-py's ordered push consumer restarts after a reconnect from sequence 1
    when it has delivered nothing yet, and cannot restart at all after ``--since``; this
    reader recreates its consumer just past the last message it handed on."""

    def __init__(self, js: JetStreamContext, stream: str, filters: list[str]) -> None:
        self.js, self.stream, self.filters = js, stream, filters
        self.last = 0  # stream sequence of the last message handed on, or where reading starts
        self.sub: JetStreamContext.PullSubscription | None = None
        self.expected = 1  # consumer sequence the next message must carry; another is a gap

    async def open(self, since: datetime | None, from_start: bool) -> None:
        if since is not None:
            start = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        else:
            start = ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
            )
        await self._consume(start)

    async def _consume(self, start: ConsumerConfig) -> None:
        config = start.evolve(
            filter_subjects=self.filters,
            ack_policy=AckPolicy.NONE,  # a viewer: nothing to redeliver
            inactive_threshold=30.0,  # the server removes it once we are gone
            mem_storage=True,
            num_replicas=1,
        )
        info = await self.js.add_consumer(self.stream, config)
        # Where it starts, whatever the policy: the point to resume from if it is lost early.
        assert info.delivered is not None, "the server always reports it"
        self.last, self.expected = info.delivered.stream_seq, 1
        self.sub = await self.js.pull_subscribe_bind(info.name, self.stream)

    async def follow(self, out: asyncio.Queue[Msg]) -> None:
        assert self.sub is not None, "open() first"
        while True:
            try:
                msgs = await self.sub.fetch(BATCH, timeout=WAIT, heartbeat=HEARTBEAT)
            except FetchTimeoutError:
                continue  # quiet, but the server answered
            except (nats.errors.Error, TimeoutError):
                # No sign of life (server restart, reconnect, consumer gone), or an error.
                await self._resume()
                continue
            for msg in msgs:
                seq = msg.metadata.sequence
                if seq.consumer != self.expected:  # a message was lost on the way
                    await self._resume()
                    break
                self.last, self.expected = seq.stream, self.expected + 1
                await out.put(msg)

    async def _resume(self) -> None:
        assert self.sub is not None
        with contextlib.suppress(nats.errors.Error):
            await self.sub.unsubscribe()  # the old consumer expires on its own
        start = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last + 1
        )
        while True:
            try:
                await self._consume(start)
                return
            except nats.errors.ConnectionClosedError:
                raise
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(RETRY)  # the client reconnects meanwhile, or closes


async def tail(
    nats_url: str,
    patterns: list[str],
    workflow: str | None,
    since: datetime | None,
    from_start: bool,
    count: int | None,
    idle_timeout: float | None,
    emit: Callable[[str], None],
    as_json: bool,
    *,
    seed_file: str | None = None,
) -> int:
    """Print matching events until ``count`` or ``idle_timeout``; how many were printed.
    ``seed_file`` is the NATS identity to read with (the operator's, on the embedded
    stack): its replies come to the operator's own inboxes."""
    if workflow is not None:
        check_token(workflow, "workflow id")  # it becomes a filter token
    identity = {"nkeys_seed": seed_file, "inbox_prefix": inbox_prefix("operator")}
    nc = await nats.connect(nats_url, **(identity if seed_file else {}))
    js = nc.jetstream()
    # Bounded: a reader waits for the printing rather than piling up a whole replay.
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=BATCH)
    shown = 0
    try:
        readers = [StreamReader(js, s, f) for s, f in streams_for(patterns, workflow).items()]
        for reader in readers:
            await reader.open(since, from_start)
        async with asyncio.TaskGroup() as group:
            following = [group.create_task(r.follow(queue)) for r in readers]
            try:
                while count is None or shown < count:
                    try:
                        async with asyncio.timeout(idle_timeout):
                            msg = await queue.get()
                    except TimeoutError:
                        break
                    # Safety net: the server-side filters may be wider (see streams_for).
                    wf = workflow_id_of(msg.subject) or ""
                    if workflow and wf != workflow:
                        continue
                    if not matches(patterns, msg.subject):
                        continue
                    emit(_format(msg, wf, as_json))
                    shown += 1
            finally:
                await _stop(following)
    finally:
        await nc.close()
    return shown


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel until done: Python 3.11's asyncio.wait_for, inside nats-py's fetch, drops a
    cancellation that arrives together with a message, and the reader reads on."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)


def _format(msg: Msg, wf: str, as_json: bool) -> str:
    headers = msg.headers or {}
    cls = event_type_of(msg.subject, headers)
    when = (
        datetime.fromisoformat(headers["ce-time"])
        if "ce-time" in headers
        else datetime.now().astimezone()
    )
    ce_type = headers.get("ce-type", msg.subject)
    text = ""
    event = None
    if cls is not None:
        try:
            event = decode_event(msg.data, cls)
            text = summary(event)
        except UndecodableEvent as exc:
            text = f"(undecodable: {exc})"
    if as_json:
        body: object
        try:
            body = json.loads(msg.data)
        except ValueError:
            body = msg.data.decode(errors="replace")
        return json.dumps({
            "time": when.isoformat(), "type": ce_type, "subject": msg.subject,
            "workflow_id": wf or None, "summary": text, "seq": msg.metadata.sequence.stream,
            "event": body,
        })  # fmt: skip
    return event_line(when, ce_type.removeprefix("aiop.").removesuffix(".v1"), wf, text)
