"""The consumer loop at its edges, against a real nats-server (and PostgreSQL for a batch
transaction): fetches sized to free workers, a stop that drains, and hand-backs that are
redelivered at once rather than after ``ack_wait``."""

import asyncio

import asyncpg
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerInfo

from aiop.contracts import WorkflowQueued
from aiop.contracts.envelope import encode_event
from aiop.devstack import until
from aiop.servicekit import Delivery, DeliveryPolicy, Outcomes, Service, ServiceSettings
from aiop.servicekit.streams import ensure_streams

pytestmark = pytest.mark.integration

# ack_wait far beyond every timeout here: a message seen again within a test was handed
# back, not redelivered because its ack timer ran out.
SLOW_REDELIVERY = DeliveryPolicy(ack_wait_s=60)


async def queue(nc: Client, *workflows: str) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    for wf in workflows:
        env = encode_event(WorkflowQueued(workflow_id=wf, reason="test"), "test")
        await js.publish(env.subject, env.body, headers=env.headers, stream="AIOP")


async def info(nc: Client, durable: str) -> ConsumerInfo:
    return await nc.jetstream().consumer_info("AIOP", durable)


async def redelivered(settings: ServiceSettings, running, durable: str, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Delivery counts of the next ``count`` messages a fresh instance of ``durable`` gets."""
    seen: list[int] = []
    got_all = asyncio.Event()

    async def handler(batch: list[Delivery[WorkflowQueued]]) -> Outcomes:
        seen.extend(one.msg.metadata.num_delivered for one in batch)
        if len(seen) >= count:
            got_all.set()
        return [None] * len(batch)

    svc = Service("again", settings)
    svc.consume_batch(WorkflowQueued, handler, durable=durable, policy=SLOW_REDELIVERY)
    async with running(svc):
        await asyncio.wait_for(got_all.wait(), 10)
    return seen


async def test_a_fetch_asks_for_no_more_than_the_free_workers(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    await queue(nc, "a", "b", "c", "d", "e")
    gate, started, handled = asyncio.Event(), [], []

    async def handler(event: WorkflowQueued) -> None:
        started.append(event.workflow_id)
        await gate.wait()
        handled.append(event.workflow_id)

    svc = Service("test", settings)
    svc.consume(WorkflowQueued, handler, durable="slots", workers=2, policy=SLOW_REDELIVERY)
    async with running(svc):
        await until(lambda: len(started) == 2, what="two handlers running")
        state = await info(nc, "slots")
        # Two delivered to the two busy workers; three still in the stream, not in memory.
        assert (state.num_ack_pending, state.num_pending) == (2, 3)
        gate.set()
        await until(lambda: len(handled) == 5, what="all five handled")
    assert sorted(handled) == ["a", "b", "c", "d", "e"]


async def test_stop_lets_handlers_finish_and_leaves_the_rest_in_the_stream(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    await queue(nc, "a", "b", "c")
    gate, started, handled = asyncio.Event(), asyncio.Event(), []

    async def handler(event: WorkflowQueued) -> None:
        started.set()
        await gate.wait()
        handled.append(event.workflow_id)

    svc = Service("test", settings)
    svc.consume(WorkflowQueued, handler, durable="drain", policy=SLOW_REDELIVERY)
    async with running(svc):
        await asyncio.wait_for(started.wait(), 10)
        stopping = asyncio.create_task(svc.stop())
        await until(lambda: svc.consumers[0].stopping, what="the stop to begin")
        gate.set()  # the handler finishes during the stop's grace
        await stopping
        state = await info(nc, "drain")
        assert handled == ["a"]
        # "a" was acked; "b" and "c" were never fetched, so nothing waits on an ack timer.
        assert (state.num_ack_pending, state.num_pending, state.num_redelivered) == (0, 2, 0)
        await svc.start()  # for the context manager's own stop


async def test_a_handler_past_the_grace_is_cancelled_and_its_message_handed_back(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    await queue(nc, "a")
    started = asyncio.Event()

    async def stuck(event: WorkflowQueued) -> None:
        started.set()
        await asyncio.Event().wait()

    svc = Service("test", settings.model_copy(update={"stop_grace_s": 0.2}))
    svc.consume(WorkflowQueued, stuck, durable="stuck", policy=SLOW_REDELIVERY)
    await svc.start()
    await asyncio.wait_for(started.wait(), 10)
    await svc.stop()
    assert await redelivered(settings, running, "stuck", 1) == [2]


async def test_a_stop_during_a_batch_transaction_lets_it_commit(
    settings: ServiceSettings,
    running,
    nc: Client,
    pg_url: str,  # type: ignore[no-untyped-def]
) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    await pool.execute("create table folded (workflow_id text primary key)")
    await queue(nc, "a", "b", "c")
    in_transaction, gate = asyncio.Event(), asyncio.Event()

    async def fold(batch: list[Delivery[WorkflowQueued]]) -> Outcomes:
        async with pool.acquire() as conn, conn.transaction():
            for one in batch:
                await conn.execute("insert into folded values ($1)", one.event.workflow_id)
            in_transaction.set()
            await gate.wait()  # the stop arrives mid-transaction
        return [None] * len(batch)

    svc = Service("test", settings)
    svc.consume_batch(WorkflowQueued, fold, durable="fold", policy=SLOW_REDELIVERY)
    try:
        await svc.start()
        await asyncio.wait_for(in_transaction.wait(), 10)
        stopping = asyncio.create_task(svc.stop())
        await until(lambda: svc.consumers[0].stopping, what="the stop to begin")
        gate.set()
        await stopping
        rows = await pool.fetch("select workflow_id from folded order by 1")
        assert [r["workflow_id"] for r in rows] == ["a", "b", "c"]
        state = await info(nc, "fold")
        assert (state.num_ack_pending, state.num_redelivered) == (0, 0)
    finally:
        await pool.close()


async def test_a_batch_past_the_grace_is_handed_back_whole(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    await queue(nc, "a", "b")
    started = asyncio.Event()

    async def stuck(batch: list[Delivery[WorkflowQueued]]) -> Outcomes:
        started.set()
        await asyncio.Event().wait()
        return []

    svc = Service("test", settings.model_copy(update={"stop_grace_s": 0.2}))
    svc.consume_batch(WorkflowQueued, stuck, durable="stuck-batch", policy=SLOW_REDELIVERY)
    await svc.start()
    await asyncio.wait_for(started.wait(), 10)
    await svc.stop()
    assert await redelivered(settings, running, "stuck-batch", 2) == [2, 2]


async def test_changed_settings_apply_to_an_existing_durable(
    settings: ServiceSettings,
    running,
    nc: Client,  # type: ignore[no-untyped-def]
) -> None:
    async def handler(event: WorkflowQueued) -> None:
        return None

    for max_deliver in (3, 7):
        svc = Service("test", settings)
        policy = DeliveryPolicy(max_deliver=max_deliver, ack_wait_s=12)
        svc.consume(WorkflowQueued, handler, durable="changed", policy=policy)
        async with running(svc):
            config = (await info(nc, "changed")).config
            assert (config.max_deliver, config.ack_wait) == (max_deliver, 12)
