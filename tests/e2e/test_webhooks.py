"""A webhook through the whole platform ``aiop up`` starts: made with the CLI as the
README shows, a workflow submitted over HTTP, its ``workflow.completed`` received by a
local endpoint that verifies the signature with the standardwebhooks library, and the
delivery then listed with its attempt."""

import json
from typing import Any

import msgspec
import pytest
from standardwebhooks import Webhook as Verifier

from aiop.devstack import until
from aiop.devstack.receiver import Received, Receiver
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

WAIT_S = 120.0


async def test_a_completed_workflow_is_delivered_signed(platform: Platform) -> None:
    secrets: list[str] = []

    def answer(request: Received) -> int:
        Verifier(secrets[0]).verify(request.body, request.headers)
        return 204

    async with Receiver(answer) as receiver:
        made = platform.aiop("webhooks", "add", receiver.url, "--event", "workflow.completed",
                             "--event", "workflow.failed", "--json")  # fmt: skip
        assert made.returncode == 0, made.stderr
        hook = json.loads(made.stdout)
        secrets.append(hook["secret"])
        with platform.http() as http:
            submitted = http.post("/v1/workflows", json={
                "name": "hooked", "steps": [{"name": "hi", "run": ["echo", "hi"], "cache": False}],
            })  # fmt: skip
        assert submitted.status_code == 202, submitted.text
        workflow_id = submitted.json()["workflow_id"]
        got = await receiver.next(timeout_s=WAIT_S)
        assert (got.status, got.error) == (204, None)
        body = msgspec.json.decode(got.body)
        assert body["type"] == "workflow.completed"
        assert (body["data"]["workflow_id"], body["data"]["project"]) == (workflow_id, "default")

        async def delivered() -> list[Any]:
            listed = platform.aiop("webhooks", "deliveries", hook["id"], "--json")
            assert listed.returncode == 0, listed.stderr
            return [d for d in json.loads(listed.stdout) if d["state"] == "delivered"]

        found: list[Any] = await until(delivered, 30, "the delivery recorded")
        [delivery] = found
        assert delivery["id"] == got.headers["webhook-id"]
        assert [a["status"] for a in delivery["attempts"]] == [204]
        assert receiver.received.empty()  # one event subscribed to, one delivery
        assert platform.aiop("webhooks", "rm", hook["id"]).returncode == 0
