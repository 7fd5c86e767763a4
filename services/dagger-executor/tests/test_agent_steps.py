"""Agent steps against a real nats-server: the executor offers each try on the agents'
work stream and takes the first result or failure reported for it. The test stands in
for the gateway: it fetches the offers and publishes the reports an agent's lease
would produce."""

import sys

import msgspec
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from aiop.contracts import StepCompleted, StepFailed, StepSpec
from aiop.contracts.agents import (
    STREAM_AGENT_REPORTS,
    AgentReport,
    AgentWork,
    LogLine,
    report_subject,
    withdrawn_subject,
    work_durable,
    work_subject,
)
from aiop.contracts.events import StepOutputAppended, StepProgress
from aiop.contracts.workflow import RetryPolicy

from .test_integration import Watcher, request

pytestmark = pytest.mark.integration
PY = sys.executable


class FakeGateway:
    """Fetches the offers of one project's capability and reports on them as an agent."""

    def __init__(self, nc: Client, capability: str) -> None:
        self.nc = nc
        self.capability = capability

    async def take(self, timeout: float = 15) -> AgentWork:
        js = self.nc.jetstream()
        sub = await js.pull_subscribe(
            work_subject("default", self.capability),
            durable=work_durable("default", self.capability),
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        (msg,) = await sub.fetch(1, timeout=timeout)
        await msg.ack()
        return msgspec.json.decode(msg.data, type=AgentWork)

    async def report(self, work: AgentWork, report: AgentReport) -> None:
        headers = {"Nats-Msg-Id": f"{work.work_id}.{report.kind}.{report.at.timestamp()}"}
        await self.nc.jetstream().publish(
            report_subject(work.workflow_id, work.attempt, work.step),
            msgspec.json.encode(report),
            headers=headers,
        )


def result(work: AgentWork, output: dict[str, object], agent: str = "ag-1") -> AgentReport:
    return AgentReport(kind="result", work_id=work.work_id, lease_id="1-1", agent_id=agent,
                       output=output)  # fmt: skip


async def test_a_mixed_workflow_passes_json_through_an_agent_step(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    gateway = FakeGateway(executor, "summarize")
    write = "import json,os; json.dump({'text': 'a b c'}, open(os.environ['AIOP_SUMMARY'], 'w'))"
    show = "print(open('in/output.json').read())"
    await request(
        executor,
        "wf-agent",
        StepSpec(name="fetch", run=[PY, "-c", write]),
        StepSpec(
            name="sum",
            run=[],
            agent="summarize",
            with_={"sentences": 2},
            needs=["fetch"],
            outputs=["output.json"],
        ),
        StepSpec(name="show", run=[PY, "-c", show], needs=["sum"], inputs={"sum": "in"}),
    )
    work = await gateway.take()
    assert (work.step, work.capability, work.try_number) == ("sum", "summarize", 1)
    assert work.input == {"sentences": 2}
    assert work.needs == {"fetch": {"text": "a b c"}}
    await gateway.report(work, AgentReport(kind="progress", work_id=work.work_id, percent=50,
                                           message="halfway", agent_id="ag-1"))  # fmt: skip
    await gateway.report(work, AgentReport(kind="log", work_id=work.work_id,
                                           lines=[LogLine(text="reading")]))  # fmt: skip
    await gateway.report(work, result(work, {"summary": "a b"}))
    await gateway.report(work, result(work, {"summary": "applied twice?"}, agent="ag-2"))

    done = await watcher.terminal("wf-agent")
    assert done.TYPE == "aiop.workflow.completed.v1"
    events = watcher.of("wf-agent")
    (completed,) = [e for e in events if isinstance(e, StepCompleted) and e.step == "sum"]
    assert (completed.runner, completed.agent_id) == ("agent", "ag-1")
    assert completed.summary == {"summary": "a b"}
    (progress,) = [e for e in events if isinstance(e, StepProgress)]
    assert (progress.percent, progress.message, progress.agent_id) == (50, "halfway", "ag-1")
    output = await outputs(executor, "wf-agent")
    assert "reading" in output["sum"]
    assert "halfway" in output["sum"]
    assert '"summary":"a b"' in output["show"]


async def test_a_failed_try_is_retried_as_a_new_offer(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    gateway = FakeGateway(executor, "review")
    retries = RetryPolicy(attempts=2, backoff=0.01, jitter=0)
    await request(executor, "wf-retry", StepSpec(name="r", run=[], agent="review", retries=retries))
    first = await gateway.take()
    await gateway.report(first, AgentReport(kind="failure", work_id=first.work_id,
                                            error="model overloaded"))  # fmt: skip
    second = await gateway.take()
    assert (first.try_number, second.try_number) == (1, 2)
    assert first.work_id != second.work_id
    await gateway.report(first, result(first, {"late": True}))  # the first try's: ignored
    await gateway.report(second, result(second, {"findings": []}))
    await watcher.terminal("wf-retry")
    (completed,) = [e for e in watcher.of("wf-retry") if isinstance(e, StepCompleted)]
    assert (completed.tries, completed.summary) == (2, {"findings": []})


async def test_a_try_past_its_timeout_is_withdrawn(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    gateway = FakeGateway(executor, "slow")
    await request(executor, "wf-late", StepSpec(name="s", run=[], agent="slow", timeout=0.5))
    work = await gateway.take()
    failed = await watcher.terminal("wf-late")
    assert failed.TYPE == "aiop.workflow.failed.v1"
    (step,) = [e for e in watcher.of("wf-late") if isinstance(e, StepFailed)]
    assert step.timed_out
    assert step.runner == "agent"
    js = executor.jetstream()
    subject = withdrawn_subject(work.workflow_id, work.attempt, work.step, work.try_number)
    msg = await js.get_last_msg(STREAM_AGENT_REPORTS, subject)
    assert msgspec.json.decode(msg.data, type=AgentReport).work_id == work.work_id


async def outputs(nc: Client, workflow_id: str) -> dict[str, str]:
    """Each step's output text, as stored in the logs stream."""
    js = nc.jetstream()
    sub = await js.subscribe(StepOutputAppended.filter(workflow_id=workflow_id),
                             ordered_consumer=True)  # fmt: skip
    text: dict[str, str] = {}
    while True:
        try:
            msg = await sub.next_msg(timeout=1)
        except TimeoutError:
            break
        event = msgspec.json.decode(msg.data, type=StepOutputAppended)
        text[event.step] = text.get(event.step, "") + event.text
        if not msg.metadata.num_pending:
            break
    await sub.unsubscribe()
    return text
