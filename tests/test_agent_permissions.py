"""Agents' work on the bus as `aiop up` configures it: the gateway's identity may do all
its agent routes need (take work through consumers it names, keep leases and agents,
look up withdrawals, publish reports, ack), and no other service may take the work."""

import msgspec
import nats.js.errors
import pytest

from aiop.contracts.agents import (
    STREAM_AGENT_REPORTS,
    STREAM_AGENT_WORK,
    AgentRecord,
    AgentReport,
    AgentWork,
    Lease,
    lease_id,
    report_subject,
    withdrawn_subject,
    work_durable,
    work_id,
    work_subject,
)
from aiop.contracts.events import now
from aiop.devstack import until
from aiop.gateway.adapters.agent_book import AgentBook, LeaseBook
from aiop.gateway.adapters.work_queues import WorkQueues
from tests.test_bus_permissions import Bus, refused
from tests.test_bus_permissions import bus as bus  # the fixture

pytestmark = pytest.mark.integration


async def test_the_gateway_leases_agents_work_and_no_other_service_takes_it(bus: Bus) -> None:
    executor, executor_errors = await bus.connect("dagger-executor")
    gateway, errors = await bus.connect("gateway")
    js = gateway.jetstream()
    queue = await WorkQueues(gateway, js, ack_wait_s=30).queue("default", "ask")
    work = AgentWork(work_id=work_id("wf-1", 1, "ask", 1), workflow_id="wf-1", attempt=1,
                     step="ask", try_number=1, project="default", capability="ask")  # fmt: skip
    await executor.jetstream().publish(work_subject("default", "ask"), msgspec.json.encode(work),
                                       headers={"Nats-Msg-Id": work.work_id})  # fmt: skip

    (msg,) = await queue.take(1, 5)
    at = now()
    agents, leases = await AgentBook.open(js, 1), await LeaseBook.open(js, 1)
    await agents.add(AgentRecord(agent_id="ag-1", name="a", project="default", principal="dev",
                                 capabilities=["ask"], concurrency=1, registered_at=at,
                                 last_heartbeat=at))  # fmt: skip
    assert [a.agent_id for a in await agents.all()] == ["ag-1"]
    sequence = msg.metadata.sequence.stream
    await leases.hold(sequence, Lease(
        lease_id=lease_id(sequence, 1), agent_id="ag-1", project="default", capability="ask",
        work_id=work.work_id, workflow_id="wf-1", attempt=1, step="ask", try_number=1,
        ack_subject=msg.reply, leased_at=at, renewed_at=at,
    ))  # fmt: skip
    assert [x.agent_id for x in await leases.held()] == ["ag-1"]
    await msg.in_progress()
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.get_last_msg(STREAM_AGENT_REPORTS, withdrawn_subject("wf-1", 1, "ask", 1))
    result = AgentReport(kind="result", work_id=work.work_id, output={"ok": True})
    await js.publish(report_subject("wf-1", 1, "ask"), msgspec.json.encode(result))
    await gateway.request(msg.reply, b"+ACK", timeout=5)
    await gateway.flush()
    assert errors == []
    assert executor_errors == []

    taker = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_AGENT_WORK}.{work_durable('default', 'ask')}"
    for name in ("reporter", "distributor", "task-manager"):
        other, other_errors = await bus.connect(name)
        await other.publish(taker, b'{"batch": 1}')
        await other.publish(work_subject("default", "ask"), b"{}")  # nor offer work
        await other.flush()
        await until(refused(other_errors, "publish", taker), 5, f"{name} refused the work")
        await until(refused(other_errors, "publish", work_subject("default", "ask")), 5,
                    f"{name} refused offering work")  # fmt: skip
