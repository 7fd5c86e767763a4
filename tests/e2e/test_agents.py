"""Agents through the platform ``aiop up`` starts: the sample agent takes the agent step
of a workflow that mixes it with container steps; an agent killed mid-step loses its
lease, a restarted one takes the step, and its result is the one applied, once; an
agent can take and report on its own capabilities' steps only."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from aiop.contracts.events import StepCompleted
from aiop.devstack import until_sync
from tests.e2e.conftest import REPO, Platform

pytestmark = pytest.mark.e2e

WAIT_S = 120.0

# An agent offering one capability, whose handler holds its step until a file named
# ``release`` exists beside this script, and returns the pid and lease that ran it.
HOLDING_AGENT = """
import asyncio, os, sys
from pathlib import Path
from aiop.client.agent import Agent

here = Path(__file__).parent
agent = Agent(sys.argv[1], concurrency=1)


@agent.capability(sys.argv[2])
async def hold(input, ctx):
    (here / f"{os.getpid()}.started").write_text(ctx.lease_id)
    while not (here / "release").exists():
        await asyncio.sleep(0.05)
    return {"pid": os.getpid(), "lease_id": ctx.lease_id, "input": input}


agent.run()
"""


def api_key(platform: Platform) -> str:
    stack = json.loads((platform.root / ".aiop" / "stack.json").read_text())
    return Path(stack["dev_key_file"]).read_text().strip()


@contextmanager
def agent_process(platform: Platform, *argv: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")}
    env |= {"AIOP_URL": platform.gateway_url, "AIOP_API_KEY": api_key(platform)}
    process = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        assert process.stdout is not None
        process.stdout.close()


def submit(platform: Platform, spec: dict[str, Any]) -> str:
    with platform.http() as http:
        answer = http.post("/v1/workflows", json=spec)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["workflow_id"])


def ended(platform: Platform, workflow_id: str) -> dict[str, Any]:
    def view() -> dict[str, Any] | None:
        with platform.http() as http:
            got = http.get(f"/v1/workflows/{workflow_id}").json()
        return got if got["state"] in ("succeeded", "failed", "cancelled") else None

    return until_sync(view, WAIT_S, f"the end of {workflow_id}")


async def completions(platform: Platform, workflow_id: str) -> list[StepCompleted]:
    """Every step.completed event of the workflow, as stored."""
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        sub = await js.subscribe(StepCompleted.filter(workflow_id=workflow_id),
                                 ordered_consumer=True)  # fmt: skip
        found = []
        pending = (await sub.consumer_info()).num_pending + sub.pending_msgs
        while pending:
            msg = await sub.next_msg(timeout=5)
            found.append(msgspec.json.decode(msg.data, type=StepCompleted))
            pending = msg.metadata.num_pending
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def steps_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in view["steps"]}


async def test_the_sample_agent_takes_the_agent_step_of_a_mixed_workflow(
    platform: Platform,
) -> None:
    name = f"sample-{uuid.uuid4().hex[:6]}"
    agent = REPO / "examples" / "agents" / "agent.py"
    with agent_process(platform, str(agent), "--name", name, cwd=platform.root):
        listed = until_sync(
            lambda: name in (out := platform.aiop("agents", "ls")).stdout and out,
            WAIT_S, "the sample agent in `aiop agents ls`",
        )  # fmt: skip
        assert "summarize" in listed.stdout
        ran = platform.aiop("submit", "examples/workflows/agent-mixed.yaml", "--wait", "--json",
                            timeout=WAIT_S)  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        workflow_id = json.loads(ran.stdout)["workflow_id"]
    view = ended(platform, workflow_id)
    assert view["state"] == "succeeded"
    summary = steps_of(view)["summarize"]["summary"]
    assert len(summary["sentences"]) == 2
    logs = platform.aiop("logs", workflow_id, "--step", "show")
    assert summary["summary"].split(".")[0] in logs.stdout
    (done,) = [c for c in await completions(platform, workflow_id) if c.step == "summarize"]
    assert done.runner == "agent"
    assert done.agent_id is not None


async def test_a_killed_agents_step_goes_to_a_restarted_agent_and_counts_once(
    platform: Platform, tmp_path: Path
) -> None:
    capability = f"hold-{uuid.uuid4().hex[:6]}"
    script = tmp_path / "holding_agent.py"
    script.write_text(textwrap.dedent(HOLDING_AGENT))
    workflow_id = submit(platform, {
        "name": "held", "steps": [{"name": "hold", "agent": capability, "with": {"n": 1}}],
    })  # fmt: skip
    with agent_process(platform, str(script), "first", capability, cwd=tmp_path) as first:
        started = until_sync(lambda: list(tmp_path.glob(f"{first.pid}.started")), WAIT_S,
                             "the first agent holding the step")  # fmt: skip
        first_lease = started[0].read_text()
        first.kill()  # mid-step: no result, no more heartbeats
        first.wait(10)
    (tmp_path / "release").touch()
    with agent_process(platform, str(script), "second", capability, cwd=tmp_path) as second:
        view = ended(platform, workflow_id)
    assert view["state"] == "succeeded"
    output = steps_of(view)["hold"]["summary"]
    assert output["pid"] == second.pid
    assert output["input"] == {"n": 1}
    # The same message, delivered again: the same sequence, a later delivery.
    assert output["lease_id"].split("-")[0] == first_lease.split("-")[0]
    assert output["lease_id"] != first_lease
    (done,) = await completions(platform, workflow_id)
    assert done.tries == 1


def register(http: httpx.Client, name: str, capability: str) -> dict[str, Any]:
    answer = http.post("/v1/agents", json={"name": name, "capabilities": [capability]})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def as_agent(platform: Platform, agent: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=platform.gateway_url, timeout=30,
                        headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip


def test_an_agent_takes_and_reports_on_its_own_capabilities_only(platform: Platform) -> None:
    mark = uuid.uuid4().hex[:6]
    with platform.http() as http:
        a = register(http, f"a-{mark}", f"cap-a-{mark}")
        b = register(http, f"b-{mark}", f"cap-b-{mark}")
    workflow_id = submit(platform, {
        "name": "isolated", "steps": [{"name": "b", "agent": f"cap-b-{mark}", "with": {}}],
    })  # fmt: skip
    with as_agent(platform, a) as agent_a, as_agent(platform, b) as agent_b:
        polled = agent_a.post(f"/v1/agents/{a['agent_id']}/work", params={"wait": 1})
        assert polled.status_code == 200, polled.text
        assert polled.json()["leases"] == []
        (lease,) = until_sync(
            lambda: agent_b.post(f"/v1/agents/{b['agent_id']}/work",
                                 params={"wait": 5}).json()["leases"],
            WAIT_S, "the step offered to agent b",
        )  # fmt: skip
        assert lease["workflow_id"] == workflow_id
        on_b = f"/v1/agents/{b['agent_id']}/leases/{lease['lease_id']}"
        on_a = f"/v1/agents/{a['agent_id']}/leases/{lease['lease_id']}"
        # Agent a's token names agent a: b's routes refuse it, and on its own routes
        # the lease is not one it holds.
        assert agent_a.post(f"{on_b}/result", json={"output": {"by": "a"}}).status_code == 403
        assert agent_a.post(f"/v1/agents/{b['agent_id']}/work").status_code == 403
        stolen = agent_a.post(f"{on_a}/result", json={"output": {"by": "a"}})
        assert stolen.status_code in (403, 409), stolen.text
        assert stolen.headers["content-type"].startswith("application/problem+json")
        assert agent_b.post(f"{on_b}/result", json={"output": {"by": "b"}}).status_code == 200
    view = ended(platform, workflow_id)
    assert view["state"] == "succeeded"
    assert steps_of(view)["b"]["summary"] == {"by": "b"}
