"""``aiop tail`` against a real nats-server: a run's events print in the order the stream
holds them, whichever subject patterns they came through."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from aiop.cli.tail import tail
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import (
    DeadLetterRecorded,
    Event,
    ExecutorCircuitChanged,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowFailed,
    WorkflowRequested,
    WorkflowStarted,
)
from aiop.contracts.subjects import STREAM_DLQ, STREAM_EVENTS
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.devstack.nats import NatsServer
from aiop.servicekit.streams import ensure_streams

pytestmark = pytest.mark.integration

DEFAULT = ["aiop.workflow.>", "aiop.step.>", "aiop.dlq.>"]
SPEC = WorkflowSpec(name="ci", steps=[StepSpec(name="build", run=["make"])])
WAIT = 10.0  # seconds without a new line before a tail gives up


def run_of(wf: str) -> list[Event]:
    """A run that fails in its second step, in the order its executor reports it."""
    return [
        WorkflowRequested(workflow_id=wf, spec=SPEC, pool="default"),
        WorkflowStarted(workflow_id=wf, executor_id="ex-1"),
        StepStarted(workflow_id=wf, step="build"),
        StepCompleted(workflow_id=wf, step="build"),
        StepStarted(workflow_id=wf, step="test"),
        StepFailed(workflow_id=wf, step="test", exit_code=1, error="exit 1"),
        WorkflowFailed(workflow_id=wf, executor_id="ex-1", reason="step test failed"),
    ]


def interleaved(*runs: list[Event]) -> list[Event]:
    """Two runs at once: their events alternate on the bus."""
    return [event for pair in zip(*runs, strict=True) for event in pair]


DEAD = DeadLetterRecorded(
    stream="AIOP", consumer="reporter", original_subject="aiop.step.started.v1.x",
    stream_seq=1, reason="undecodable", deliveries=1, payload=b"{",
)  # fmt: skip


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    await ensure_streams(nc.jetstream())
    yield nc.jetstream()
    await nc.close()


async def publish(js: JetStreamContext, events: list[Event]) -> None:
    for event in events:
        env = encode_event(event, "test")
        stream = STREAM_DLQ if isinstance(event, DeadLetterRecorded) else STREAM_EVENTS
        await js.publish(env.subject, env.body, headers=env.headers, stream=stream)


async def tailed(
    url: str,
    patterns: list[str],
    *,
    workflow: str | None = None,
    count: int | None = None,
    idle: float = WAIT,
    as_json: bool = True,
) -> list[Any]:
    """The lines ``tail`` prints from the start of the streams, decoded if JSON."""
    lines: list[str] = []
    shown = await tail(url, patterns, workflow, None, True, count, idle, lines.append, as_json)
    assert shown == len(lines)
    return [json.loads(line) for line in lines] if as_json else lines


async def test_a_runs_events_print_in_stream_order(nats_url: str, js: JetStreamContext) -> None:
    events = interleaved(run_of("wf-a"), run_of("wf-b"))
    events.insert(5, DEAD)  # another stream: in order only with itself
    await publish(js, events)

    lines = await tailed(nats_url, DEFAULT, count=len(events))

    run = [line for line in lines if line["subject"] != DEAD.subject()]
    assert [line["subject"] for line in run] == [e.subject() for e in events if e is not DEAD]
    assert [line["seq"] for line in run] == sorted({line["seq"] for line in run})
    assert [line["subject"] for line in lines].count(DEAD.subject()) == 1


async def test_one_workflows_events_print_in_order(nats_url: str, js: JetStreamContext) -> None:
    run = run_of("wf-a")
    await publish(js, interleaved(run, run_of("wf-b")))

    # No count: the quiet after the last event ends it, so anything extra would show.
    lines = await tailed(nats_url, DEFAULT, workflow="wf-a", idle=1.0, as_json=False)

    assert [line.split()[1:3] for line in lines] == [
        [e.TYPE.removeprefix("aiop.").removesuffix(".v1"), "wf-a"] for e in run
    ]


async def test_overlapping_patterns_print_each_event_once(
    nats_url: str, js: JetStreamContext
) -> None:
    events = interleaved(run_of("wf-a"), run_of("wf-b"))
    await publish(js, events)

    patterns = ["aiop.workflow.*.v1.wf-a", "aiop.workflow.failed.>"]
    lines = await tailed(nats_url, patterns, idle=1.0)

    started_a = [e for e in events if isinstance(e, WorkflowStarted) and e.workflow_id == "wf-a"]
    wanted = [e for e in events if isinstance(e, WorkflowFailed) or e in started_a]
    assert [line["subject"] for line in lines] == [e.subject() for e in wanted]


async def test_since_replays_from_then_and_survives_a_server_restart(
    nats_server: NatsServer, js: JetStreamContext
) -> None:
    await publish(js, run_of("before"))
    since = datetime.now(UTC)
    first, *rest = run_of("wf-a")
    await publish(js, [first])
    lines: asyncio.Queue[str] = asyncio.Queue()
    following = asyncio.create_task(
        tail(nats_server.url, DEFAULT, None, since, False, 1 + len(rest), WAIT * 3,
             lines.put_nowait, True)
    )  # fmt: skip
    assert json.loads(await asyncio.wait_for(lines.get(), WAIT))["subject"] == first.subject()

    await asyncio.to_thread(nats_server.stop)
    await asyncio.to_thread(nats_server.start)
    nc = await nats.connect(nats_server.url)
    await publish(nc.jetstream(), rest)
    await nc.close()

    assert await asyncio.wait_for(following, WAIT * 3) == 1 + len(rest)
    subjects = [json.loads(lines.get_nowait())["subject"] for _ in rest]
    assert subjects == [e.subject() for e in rest]


async def test_an_executors_circuit_changes_are_stored_and_shown(
    nats_url: str, js: JetStreamContext
) -> None:
    opened = ExecutorCircuitChanged(
        executor_id="ex-1", pool="default", state="open", runner="local", failures=3,
        reason="3 engine failures in a row, the last: connection refused", probe_in_s=30.0,
    )  # fmt: skip
    await publish(js, [opened, *run_of("wf-a")[:2]])

    patterns = ["aiop.workflow.>", "aiop.step.>", "aiop.executor.circuit.>"]
    lines = await tailed(nats_url, patterns, count=3, as_json=False)

    assert lines[0].split()[1] == "executor.circuit"
    assert lines[0].endswith(
        "ex-1 (pool default): Dagger circuit open, steps run locally:"
        " 3 engine failures in a row, the last: connection refused; probe in 30s"
    )
