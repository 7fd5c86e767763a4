"""The README's external event example, run as it is against ``aiop up``: a trigger made
with the CLI, a CloudEvent sent with curl in binary mode, the workflow it starts from the
built-in data-processing template; the same event again starts nothing; the README's
NATS example, as the ``external`` identity, starts another; a trigger of a project's task
runs the task."""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from aiop.task_manager.submissions import run_id
from tests.e2e.conftest import REPO, Platform

pytestmark = pytest.mark.e2e

SOURCE = "https://git.example/shop"
TERMINAL = ("aiop.workflow.completed.v1", "aiop.workflow.failed.v1", "aiop.workflow.cancelled.v1")


def readme_block(after: str, language: str) -> str:
    """The first ``language`` block of the README after the line holding ``after``."""
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    found = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert found is not None, f"no {language} block after {after!r}"
    return found.group(1)


def run_shell(platform: Platform, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, in the platform's directory, as its user would: ``uv run aiop``
    is this environment's aiop, URL and TOKEN what ``aiop up`` printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")}
    env |= {"URL": platform.gateway_url, "TOKEN": platform.token, "PYTHON": sys.executable}
    prelude = (
        'uv() { [ "$1" = run ] && shift; [ "$1" = aiop ] && shift; "$PYTHON" -m aiop.cli "$@"; }\n'
    )
    return subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script], cwd=platform.root,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


async def ended(platform: Platform, workflow_id: str, timeout: float = 300) -> str:
    """The subject of the workflow's terminal event, waited for on the bus."""
    nc = await platform.connect()
    try:
        sub = await nc.jetstream().subscribe(f"aiop.workflow.*.v1.{workflow_id}",
                                             ordered_consumer=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg.subject.rsplit(".", 1)[0] in TERMINAL:
                return str(msg.subject)
    finally:
        await nc.close()


def events(platform: Platform) -> list[dict[str, Any]]:
    listed = platform.aiop("events", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


def status(platform: Platform, workflow_id: str) -> dict[str, Any]:
    shown = platform.aiop("status", workflow_id, "--json")
    assert shown.returncode in (0, 1), shown.stderr
    view: dict[str, Any] = json.loads(shown.stdout)
    return view


async def test_the_readme_example_starts_a_workflow_from_an_event(platform: Platform) -> None:
    example = readme_block("runs this block as it is", "sh")
    done = run_shell(platform, example)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["id"] == "push-0001"
    workflow_id = run_id("default", "on-push", SOURCE, "push-0001")
    assert await ended(platform, workflow_id) == f"aiop.workflow.completed.v1.{workflow_id}"
    view = status(platform, workflow_id)
    assert view["state"] == "succeeded", json.dumps(view, indent=1)
    assert view["origin"] == {"kind": "trigger", "trigger": "on-push", "event_id": "push-0001",
                              "event_source": SOURCE}  # fmt: skip
    assert view["template"].startswith("data-processing@")
    assert view["parameters"]["group_by"] == "product"
    (record,) = [e for e in events(platform) if e["id"] == "push-0001"]
    assert record["runs"] == [{"trigger": "on-push", "workflow_id": workflow_id}]
    assert "trigger on-push (event push-0001)" in platform.aiop("status", workflow_id).stdout

    # The same event again (curl alone: the trigger exists): kept once, nothing started.
    again = run_shell(platform, example[example.index("curl") :])
    assert again.returncode == 0, again.stderr
    nc = await platform.connect()
    try:
        info = await nc.jetstream().stream_info(
            "AIOP", subjects_filter="aiop.workflow.submitted.v1.*"
        )
        started = [s for s in info.state.subjects or {} if s.endswith(workflow_id)]
        assert started == [f"aiop.workflow.submitted.v1.{workflow_id}"]
        assert info.state.subjects[started[0]] == 1
    finally:
        await nc.close()
    assert len([e for e in events(platform) if e["id"] == "push-0001"]) == 1


async def test_the_readme_nats_example_publishes_as_the_external_identity(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = platform.aiop("triggers", "create", "on-push", "--on", "com.example.push",
                            "--where", "ref=main", "--template", "data-processing",
                            "-p", "group_by=${{ event.data.group_by }}")  # fmt: skip
    assert created.returncode == 0, created.stderr  # created, or the example's, replaced
    example = readme_block("**Straight on NATS.**", "python")
    namespace: dict[str, Any] = {}
    exec(example, namespace)  # the README's own code, as a reader would paste it
    monkeypatch.chdir(platform.root)  # its seed file is named relative to the platform
    await namespace["send"](platform.nats_url)
    workflow_id = run_id("default", "on-push", SOURCE, "push-0002")
    assert await ended(platform, workflow_id) == f"aiop.workflow.completed.v1.{workflow_id}"
    view = status(platform, workflow_id)
    assert view["parameters"]["group_by"] == "region"
    assert view["origin"]["event_id"] == "push-0002"
    # Not a CloudEvent: dead-lettered with the reason, which `aiop tail` shows.
    nc = await platform.connect()
    try:
        dlq = await nc.jetstream().subscribe(
            "aiop.dlq.recorded.v1.AIOP_EXT.>", ordered_consumer=True
        )
        await nc.jetstream().publish("ext.shop.noise", b"hello")
        record = json.loads((await dlq.next_msg(timeout=30)).data)
        assert "not a CloudEvent" in record["reason"]
    finally:
        await nc.close()


async def test_a_trigger_of_a_task_runs_the_task(platform: Platform) -> None:
    project = f"triggered-{uuid.uuid4().hex[:6]}"
    for args in [
        ("projects", "create", project),
        ("tasks", "create", "report", "--template", "data-processing", "-p", "group_by=month",
         "--project", project),
        ("triggers", "create", "on-ship", "--on", "com.example.ship", "--task", "report",
         "-p", "group_by=${{ event.data.group_by }}", "--project", project),
        ("events", "send", "--type", "com.example.ship", "--id", "ship-1",
         "--data", '{"group_by": "region"}', "--project", project),
    ]:  # fmt: skip
        done = platform.aiop(*args)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "-> task report" in platform.aiop("triggers", "ls", "--project", project).stdout
    workflow_id = run_id(project, "on-ship", "aiop-cli", "ship-1")
    assert await ended(platform, workflow_id) == f"aiop.workflow.completed.v1.{workflow_id}"
    view = status(platform, workflow_id)
    assert (view["task"], view["project"]) == ("report", project)
    assert view["template"].startswith("data-processing@")
    assert view["parameters"]["group_by"] == "region"  # the event's over the task's
    assert view["origin"]["trigger"] == "on-ship"
