"""Nothing lost, nothing twice: redelivery, poison messages and a killed service."""

import asyncio
import json
import os
import signal

import pytest

from aiop.contracts import DeadLetterRecorded, StepSpec, WorkflowSpec, WorkflowSubmitted
from aiop.contracts.envelope import decode_event, encode_event
from aiop.devstack import until_sync
from tests.e2e.conftest import Platform
from tests.e2e.test_workflows import wait_terminal

pytestmark = pytest.mark.e2e


async def count_messages(platform: Platform, subject: str) -> int:
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        info = await js.stream_info("AIOP", subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


async def publish_twice(platform: Platform, event: WorkflowSubmitted) -> None:
    """The same event delivered twice, as after a lost ack: the second copy gets a fresh
    Nats-Msg-Id so JetStream's duplicate window does not hide it from the consumers."""
    envelope = encode_event(event, "aiop/tests")
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        await js.publish(envelope.subject, envelope.body, headers=envelope.headers)
        again = {**envelope.headers, "Nats-Msg-Id": event.event_id + "-redelivered"}
        await js.publish(envelope.subject, envelope.body, headers=again)
    finally:
        await nc.close()


def test_redelivered_event_has_no_second_effect(platform: Platform) -> None:
    spec = WorkflowSpec(name="twice", steps=[StepSpec(name="only", run=["echo", "once"])])
    event = WorkflowSubmitted(workflow_id="redelivered1", spec=spec, principal="dev")
    asyncio.run(publish_twice(platform, event))
    assert asyncio.run(count_messages(platform, "aiop.workflow.submitted.v1.redelivered1")) == 2
    assert wait_terminal(platform, "redelivered1")["state"] == "succeeded"
    for subject in ("accepted", "started", "completed"):
        n = asyncio.run(count_messages(platform, f"aiop.workflow.{subject}.v1.redelivered1"))
        assert n == 1, f"{subject} published {n} times"


async def poison_then_dead_letter(platform: Platform) -> DeadLetterRecorded:
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        sub = await js.subscribe("aiop.dlq.>", ordered_consumer=True, deliver_policy="new")
        await js.publish("aiop.workflow.submitted.v1.poison1", b"\x00 not an event")
        while True:
            record = decode_event((await sub.next_msg(timeout=30)).data, DeadLetterRecorded)
            # Each consumer of the subject records its own refusal; task-manager's is the
            # one that matters for the workflow.
            if record.original_subject == "aiop.workflow.submitted.v1.poison1" and (
                record.consumer.startswith("task-manager")
            ):
                return record
    finally:
        await nc.close()


def test_poison_message_is_dead_lettered_and_work_goes_on(platform: Platform) -> None:
    record = asyncio.run(poison_then_dead_letter(platform))
    assert record.payload == b"\x00 not an event"
    assert record.reason
    assert record.consumer.startswith("task-manager")
    done = platform.aiop("submit", "examples/hello.yaml", "--wait")
    assert done.returncode == 0, done.stderr


def test_killed_executor_is_restarted_and_resumes_the_workflow(platform: Platform) -> None:
    spec = {
        "name": "slow",
        "steps": [
            # Opted out of the cache: only the resume record keeps it from running again.
            {"name": "first", "run": ["echo", "done once"], "cache": False},
            {"name": "wait", "run": ["python3", "-c", "import time; time.sleep(3)"],
             "needs": ["first"], "cache": False},
        ],
    }  # fmt: skip
    with platform.http() as http:
        workflow_id = http.post("/v1/workflows", json=spec).json()["workflow_id"]

        def waiting() -> bool:
            steps = http.get(f"/v1/workflows/{workflow_id}").json()["steps"]
            return [s["state"] for s in steps] == ["succeeded", "running"]

        until_sync(waiting, 30, "the second step running")
    os.kill(platform.pid_of("dagger-executor"), signal.SIGKILL)
    platform.wait_for_output("[crash] dagger-executor killed by signal 9", 30)
    platform.wait_for_output("[restart] dagger-executor", 30)
    view = wait_terminal(platform, workflow_id, timeout=90)
    assert view["state"] == "succeeded"
    assert view["attempt"] >= 2
    first = view["steps"][0]
    assert first["state"] == "cached"  # resumed: its result came from attempt 1
    tailed = platform.aiop("tail", "--workflow", workflow_id, "--all", "--idle", "1", "--json")
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    started = [e["event"]["step"] for e in events if e["type"] == "aiop.step.started.v1"]
    assert started.count("first") == 1, "a step that had completed ran again"
    resumed = [e["event"] for e in events if e["type"] == "aiop.step.cached.v1"]
    # from_attempt 1 is the default, which the wire format leaves out.
    assert {(e["step"], e["source"], e.get("from_attempt", 1)) for e in resumed} == {
        ("first", "resumed", 1)
    }


def test_a_step_cannot_read_the_platforms_signing_key(platform: Platform) -> None:
    key = platform.root / ".aiop" / "auth" / "signing-key.pem"
    assert key.exists()
    line = platform.wait_for_output("  steps ", 1)
    if "NOT separated" in line:
        pytest.skip(f"this host cannot separate steps: {line.strip()}")
    spec = {"name": "thief", "steps": [{"name": "steal", "run": ["cat", str(key)]}]}
    with platform.http() as http:
        workflow_id = http.post("/v1/workflows", json=spec).json()["workflow_id"]
    view = wait_terminal(platform, workflow_id)
    (step,) = view["steps"]
    assert (view["state"], step["state"]) == ("failed", "failed")
    # Refused under its own uid, or not even there in its own namespace.
    assert any(why in step["output_tail"] for why in ("Permission denied", "No such file"))
    assert "PRIVATE KEY" not in step["output_tail"]
