"""The reporter against a real nats-server: summaries, the query, the advisory net."""

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from aiop.contracts import events as ev
from aiop.contracts.endpoints import GET_REPORT
from aiop.contracts.envelope import decode_event, encode_event
from aiop.contracts.queries import WorkflowQuery, WorkflowReport
from aiop.contracts.workflow import StepSpec, WorkflowSpec
from aiop.devstack import until
from aiop.reporter.main import ReporterSettings, build
from aiop.servicekit.rpc import QueryFailed, request, wait_ready

pytestmark = pytest.mark.integration

SPEC = WorkflowSpec(name="ci", steps=[StepSpec(name="build", run=["make"])])


@pytest.fixture
async def reporter(nats_url: str) -> AsyncIterator[Client]:
    """A running reporter, and a client connection to talk to it."""
    app = build(ReporterSettings(nats_url=nats_url))
    task = asyncio.create_task(app.run())
    nc = await nats.connect(nats_url)
    try:
        await wait_ready(nc, "reporter", timeout=10)
        yield nc
    finally:
        await nc.close()
        app.exit()
        await task


async def publish(nc: Client, event: ev.Event) -> None:
    envelope = encode_event(event, "test")
    await nc.jetstream().publish(envelope.subject, envelope.body, headers=envelope.headers)


async def report_when(
    nc: Client, wf: str, done: Callable[[WorkflowReport], bool], timeout: float = 10
) -> WorkflowReport:
    """The report once ``done(report)`` holds (a 404 counts as not yet)."""

    async def check() -> WorkflowReport | None:
        try:
            body = await request(nc, GET_REPORT.subject, WorkflowQuery(workflow_id=wf))
        except QueryFailed as exc:
            if exc.code != 404:
                raise
            return None
        report = msgspec.json.decode(body, type=WorkflowReport)
        return report if done(report) else None

    return await until(check, timeout, f"the report of {wf}")


async def test_events_fold_into_a_report(reporter: Client) -> None:
    nc, wf = reporter, "wf-int-1"
    started = ev.StepStarted(workflow_id=wf, step="build")
    for event in [
        ev.WorkflowAccepted(workflow_id=wf, spec=SPEC),
        ev.WorkflowStarted(workflow_id=wf, executor_id="x1"),
        started,
        ev.StepCompleted(workflow_id=wf, step="build"),
        ev.WorkflowCompleted(workflow_id=wf, executor_id="x1"),
    ]:
        await publish(nc, event)
    # The same event again under a new message id: JetStream stores it, the fold ignores it.
    await publish(nc, msgspec.structs.replace(started, event_id="dup-of-started"))
    report = await report_when(nc, wf, lambda r: r.outcome == "succeeded" and r.steps_succeeded)
    assert (report.steps_total, report.steps_succeeded, report.steps_failed) == (1, 1, 0)
    assert report.executor_id == "x1"
    assert report.duration_s is not None
    assert report.duration_s >= 0


async def test_unknown_workflow_is_404(reporter: Client) -> None:
    with pytest.raises(QueryFailed) as info:
        await request(reporter, GET_REPORT.subject, WorkflowQuery(workflow_id="nobody"))
    assert info.value.code == 404


async def next_dead_letter(nc: Client, timeout: float = 10) -> ev.DeadLetterRecorded:
    sub = await nc.jetstream().subscribe("aiop.dlq.>", ordered_consumer=True)
    msg = await sub.next_msg(timeout=timeout)
    await sub.unsubscribe()
    return decode_event(msg.data, ev.DeadLetterRecorded)


async def test_max_deliveries_advisory_is_dead_lettered(reporter: Client) -> None:
    nc = reporter
    js = nc.jetstream()
    # A consumer that gives up after one delivery, as if its handler crashed the process.
    await js.add_consumer(
        "AIOP",
        ConsumerConfig(
            durable_name="crashy",
            filter_subject="aiop.workflow.queued.v1.wf-poison",
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=1,
            ack_wait=0.5,
        ),
    )
    await publish(nc, ev.WorkflowQueued(workflow_id="wf-poison", reason="test"))
    sub = await js.pull_subscribe_bind("crashy", "AIOP")
    [msg] = await sub.fetch(1, timeout=5)  # never acked: ack_wait expires, max reached
    record = await next_dead_letter(nc, timeout=15)
    assert record.reason == "max deliveries reached"
    assert record.consumer == "crashy"
    assert record.original_subject == msg.subject
    assert record.stream_seq == msg.metadata.sequence.stream
    assert msgspec.json.decode(record.payload)["workflow_id"] == "wf-poison"
    assert record.event_id == f"dlq-AIOP-{record.stream_seq}-{record.consumer}"


async def test_terminated_advisory_is_dead_lettered(reporter: Client) -> None:
    nc = reporter
    js = nc.jetstream()
    await js.add_consumer(
        "AIOP",
        ConsumerConfig(
            durable_name="terminator",
            filter_subject="aiop.workflow.queued.v1.wf-term",
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    await publish(nc, ev.WorkflowQueued(workflow_id="wf-term", reason="test"))
    sub = await js.pull_subscribe_bind("terminator", "AIOP")
    [msg] = await sub.fetch(1, timeout=5)
    await msg.term()
    record = await next_dead_letter(nc)
    assert record.reason.startswith("terminated by consumer")
    assert record.consumer == "terminator"
    assert msgspec.json.decode(record.payload)["workflow_id"] == "wf-term"


async def test_concurrent_writers_lose_no_step(nats_url: str) -> None:
    """Many folds racing on one key: the compare-and-set retries keep every step."""
    from aiop.reporter.adapters.reports import ReportStore
    from aiop.reporter.domain import fold

    nc = await nats.connect(nats_url)
    try:
        store = ReportStore(nc.jetstream)
        await store.ready()
        steps = [ev.StepCompleted(workflow_id="wf-race", step=f"s{i}") for i in range(12)]
        await asyncio.gather(
            *(store.change("wf-race", lambda s, e=e: fold(s, e)) for e in steps)  # type: ignore[misc]
        )
        state, revision = await store.get("wf-race")
        assert state is not None
        assert sorted(state.steps) == sorted(e.step for e in steps)
        assert revision >= len(steps)
    finally:
        await nc.close()
