"""Dead letters over HTTP against ``aiop up``: junk published under ``ext.>`` is
dead-lettered by task-manager's triggers, listed by ``GET /v1/dead-letters`` with its
reason, replayed fixed (the CloudEvent it should have been), and the run its trigger
starts is seen, in the live tail too; a second replay is refused."""

import json
import uuid

import pytest

from aiop.task_manager.submissions import run_id
from tests.e2e.conftest import Platform
from tests.e2e.test_triggers import ended

pytestmark = pytest.mark.e2e

SOURCE = "https://shop.example"


async def test_junk_dead_lettered_then_replayed_fixed_starts_a_run(platform: Platform) -> None:
    kind = f"com.example.fixed-{uuid.uuid4().hex[:6]}"
    made = platform.aiop("triggers", "create", f"on-{kind[12:]}", "--on", kind,
                         "--template", "data-processing", "-p", "group_by=region")  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    subject = f"ext.shop.{kind[12:]}"
    nc = await platform.connect()  # as the installation's admin, as a system outside would
    try:
        dlq = await nc.jetstream().subscribe(
            "aiop.dlq.recorded.v1.AIOP_EXT.>", ordered_consumer=True
        )
        await nc.jetstream().publish(subject, b"order 42 shipped")
        while json.loads((await dlq.next_msg(timeout=30)).data)["original_subject"] != subject:
            pass  # another test's junk
    finally:
        await nc.close()

    with platform.http() as http:
        listed = http.get("/v1/dead-letters")
        assert listed.status_code == 200, listed.text
        (item,) = [i for i in listed.json()["items"] if i["original_subject"] == subject]
        assert "not a CloudEvent" in item["reason"]
        assert item["payload"] == "order 42 shipped"
        assert item["project"] is None  # the platform's: shown to the default project
        assert item["replayed_at"] is None

        event_id = f"fixed-{uuid.uuid4().hex[:6]}"
        fixed = {"specversion": "1.0", "id": event_id, "source": SOURCE, "type": kind,
                 "datacontenttype": "application/json", "data": {"order": 42}}  # fmt: skip
        sent = http.post(f"/v1/dead-letters/{item['seq']}/replay",
                         json={"payload": json.dumps(fixed)})  # fmt: skip
        assert sent.status_code == 202, sent.text
        assert sent.json()["subject"] == subject

        workflow_id = run_id("default", f"on-{kind[12:]}", SOURCE, event_id)
        assert await ended(platform, workflow_id) == f"aiop.workflow.completed.v1.{workflow_id}"
        view = http.get(f"/v1/workflows/{workflow_id}").json()
        assert view["origin"]["event_id"] == event_id
        assert view["parameters"]["group_by"] == "region"

        again = http.post(f"/v1/dead-letters/{item['seq']}/replay")
        assert again.status_code == 409, again.text
        (item,) = [i for i in http.get("/v1/dead-letters").json()["items"]
                   if i["seq"] == item["seq"]]  # fmt: skip
        assert item["replayed_at"] == sent.json()["replayed_at"]

        # The run in the live tail, as one page (the SSE stream is the same events).
        page = http.get("/v1/stream", params={"workflow": workflow_id, "since": "10m"},
                        headers={"Accept": "application/json"})  # fmt: skip
        assert page.status_code == 200, page.text
        kinds = [e["type"] for e in page.json()["events"]]
        assert kinds[0] == "aiop.workflow.submitted.v1"
        assert "aiop.workflow.completed.v1" in kinds

    listed_cli = platform.aiop("dlq", "ls", "--json")
    assert listed_cli.returncode == 0, listed_cli.stderr
    assert subject in {i["original_subject"] for i in json.loads(listed_cli.stdout)["items"]}
