"""/v1/webhooks with the reporter running: what is refused, and with which problem; a
webhook's life through the API; another project's webhooks are not even named. Their
delivery is covered by the reporter's tests and the end-to-end test."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from aiop.contracts.endpoints import CREATE_WEBHOOK
from aiop.contracts.webhooks import NewWebhook, WebhookIn
from aiop.reporter.main import ReporterSettings
from aiop.reporter.main import build as build_reporter
from aiop.servicekit.rpc import request, wait_ready

from .conftest import Env

pytestmark = pytest.mark.integration

HOOK = {"url": "https://example.com/hook", "events": ["workflow.completed"]}
PROBLEM = "application/problem+json"


@pytest.fixture
async def hooks(env: Env, nats_url: str) -> AsyncIterator[Env]:
    """``env`` with a reporter, which keeps the webhooks."""
    reporter = build_reporter(ReporterSettings(nats_url=nats_url))
    task = asyncio.create_task(reporter.run())
    await wait_ready(env.nc, "reporter", timeout=10)
    yield env
    reporter.exit()
    await task


def problem(reply: Any, status: int, kind: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["type"] == f"urn:aiop:problem:{kind}", reply.text


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({**HOOK, "url": "ftp://example.com/x"}, "validation"),
        ({**HOOK, "url": "example.com/hook"}, "validation"),
        ({**HOOK, "url": "https://:8080/hook"}, "invalid-webhook"),  # no host
        ({**HOOK, "events": ["workflow.exploded"]}, "validation"),
        ({**HOOK, "events": []}, "validation"),
        ({"url": HOOK["url"]}, "validation"),
        ({**HOOK, "secret": "mine"}, "validation"),
        (["not", "an", "object"], "validation"),
    ],
)
async def test_a_bad_webhook_is_a_422(hooks: Env, body: Any, kind: str) -> None:
    reply = await hooks.client.post("/v1/webhooks", json=body, headers=hooks.bearer())
    problem(reply, 422, kind)


async def test_refusals_name_their_problem(hooks: Env) -> None:
    env, auth = hooks, hooks.bearer()
    not_json = await env.client.post(
        "/v1/webhooks", content=b"{nope", headers={**auth, "content-type": "application/json"}
    )
    problem(not_json, 400, "malformed")
    problem(await env.client.get("/v1/webhooks/wh_nothing", headers=auth), 404, "not-found")
    problem(await env.client.get("/v1/webhooks/a.b", headers=auth), 400, "bad-webhook-id")
    made = (await env.client.post("/v1/webhooks", json=HOOK, headers=auth)).json()
    unknown = await env.client.post(
        f"/v1/webhooks/{made['id']}/deliveries/msg_none/redeliver", headers=auth
    )
    problem(unknown, 404, "not-found")
    bad_patch = await env.client.patch(
        f"/v1/webhooks/{made['id']}", json={"url": "file:///etc/passwd"}, headers=auth
    )
    problem(bad_patch, 422, "validation")
    too_many = await env.client.get(f"/v1/webhooks/{made['id']}/deliveries?limit=0", headers=auth)
    problem(too_many, 422, "validation")


async def test_a_webhook_through_the_api(hooks: Env) -> None:
    env, auth = hooks, hooks.bearer()
    made = await env.client.post("/v1/webhooks", json={**HOOK, "description": "ci"}, headers=auth)
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["secret"].startswith("whsec_")
    assert (hook["project"], hook["events"], hook["enabled"]) == (
        "default", ["workflow.completed"], True,
    )  # fmt: skip
    shown = (await env.client.get(f"/v1/webhooks/{hook['id']}", headers=auth)).json()
    assert "secret" not in shown
    assert shown["description"] == "ci"
    listed = (await env.client.get("/v1/webhooks", headers=auth)).json()
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
    assert all("secret" not in h for h in listed["webhooks"])
    off = await env.client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"enabled": False, "events": ["workflow.failed", "step.failed"]},
        headers=auth,
    )
    assert off.status_code == 200, off.text
    assert (off.json()["enabled"], off.json()["events"]) == (False, ["step.failed", "workflow.failed"])  # fmt: skip
    deliveries = await env.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=auth)
    assert deliveries.json() == {"webhook_id": hook["id"], "deliveries": []}
    gone = await env.client.delete(f"/v1/webhooks/{hook['id']}", headers=auth)
    assert gone.status_code == 200
    missing = await env.client.get(f"/v1/webhooks/{hook['id']}", headers=auth)
    problem(missing, 404, "not-found")


async def test_another_projects_webhook_is_not_named(hooks: Env) -> None:
    env = hooks
    theirs = NewWebhook(project="other", webhook=msgspec.convert(HOOK, WebhookIn))
    made = await request(env.nc, CREATE_WEBHOOK.subject, theirs)
    hook_id = msgspec.json.decode(made)["id"]
    mine = env.bearer()
    # Asked in its own project: the caller has no such webhook.
    problem(await env.client.get(f"/v1/webhooks/{hook_id}", headers=mine), 404, "not-found")
    problem(await env.client.delete(f"/v1/webhooks/{hook_id}", headers=mine), 404, "not-found")
    # Asked in the other project: the caller has no such project.
    other = await env.client.get(f"/v1/webhooks/{hook_id}?project=other", headers=mine)
    problem(other, 404, "not-found")
    listed = (await env.client.get("/v1/webhooks", headers=mine)).json()
    assert listed["webhooks"] == []
