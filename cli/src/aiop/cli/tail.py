"""``aiop tail``: the live event stream, filtered, optionally replayed from the past."""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.cli.render import event_line, summary
from aiop.contracts.envelope import UndecodableEvent, decode_event, event_type_of
from aiop.contracts.subjects import STREAM_SUBJECTS, workflow_id_of


def streams_for(patterns: list[str]) -> dict[str, list[str]]:
    """Which streams hold messages matching ``patterns`` (NATS wildcards), and the filters."""
    chosen: dict[str, list[str]] = {}
    for pattern in patterns:
        for stream, subjects in STREAM_SUBJECTS.items():
            if any(_overlaps(pattern, s) for s in subjects):
                chosen.setdefault(stream, []).append(pattern)
    return chosen


def _overlaps(a: str, b: str) -> bool:
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return True
        if x is None or y is None:
            return False
        if x != y and "*" not in (x, y):
            return False
    return True


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
) -> int:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    queue: asyncio.Queue[nats.aio.msg.Msg] = asyncio.Queue()

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        await queue.put(msg)

    def config() -> ConsumerConfig:
        # A fresh config per subscription: subscribe() writes its filter into the one it gets.
        if since is not None:
            return ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since.isoformat()
            )
        return ConsumerConfig(deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW)

    for stream, filters in streams_for(patterns).items():
        for subject in filters:
            await js.subscribe(
                subject, stream=stream, ordered_consumer=True, config=config(), cb=on_msg
            )
    shown = 0
    try:
        while count is None or shown < count:
            try:
                msg = await asyncio.wait_for(queue.get(), idle_timeout)
            except TimeoutError:
                break
            wf = workflow_id_of(msg.subject) or ""
            if workflow and wf != workflow:
                continue
            emit(_format(msg, wf, as_json))
            shown += 1
    finally:
        await nc.close()
    return shown


def _format(msg: nats.aio.msg.Msg, wf: str, as_json: bool) -> str:
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
