"""Every route answers a caller of another project with 404 or 403: a workflow of a
project the caller may not touch is not even named."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.cache import KV_STEP_CACHE, CacheEntry, cache_entry_key
from aiop.contracts.endpoints import GET_REPORT, GET_WORKFLOW
from aiop.contracts.queries import WorkflowQuery, WorkflowReport, WorkflowView
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.servicekit import Service, ServiceSettings, rpc

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration

WF = "wf-default"
VIEW = WorkflowView(workflow_id=WF, name="build", project="default", state="running", steps=[])
REPORT = WorkflowReport(workflow_id=WF, outcome="running", project="default")
SECRET = {"value": "s3cret-of-default"}
TEMPLATE = {"version": "1", "workflow": {"name": "mine", "steps": [{"name": "s", "run": ["true"]}]}}
CACHE_KEY = "c0ffee" * 10 + "c0de"  # an entry of project default, made by the test
# How an intruder calls each route, and what it must get. A new route without an entry
# here fails the test until someone decides how it guards its projects.
CALLS: dict[tuple[str, str], tuple[str, dict[str, Any], set[int]]] = {
    ("POST", "/v1/workflows"): ("/v1/workflows", GOOD, {403}),
    ("GET", "/v1/workflows/{workflow_id}"): (f"/v1/workflows/{WF}", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/report"): (f"/v1/workflows/{WF}/report", {}, {404}),
    ("POST", "/v1/workflows/{workflow_id}/cancel"): (f"/v1/workflows/{WF}/cancel", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/logs"): (f"/v1/workflows/{WF}/logs", {}, {404}),
    # Secrets: another project's are not even named. The owner's PUT creates the secret
    # its DELETE then removes, so the intruder's DELETE was refused, not a miss.
    ("PUT", "/v1/secrets/{name}"): ("/v1/secrets/API_TOKEN?project=default", SECRET, {404}),
    ("GET", "/v1/secrets"): ("/v1/secrets?project=default", {}, {404}),
    ("DELETE", "/v1/secrets/{name}"): ("/v1/secrets/API_TOKEN?project=default", {}, {404}),
    # The step cache: another project's entries are not even named.
    ("GET", "/v1/cache"): ("/v1/cache?project=default", {}, {404}),
    ("DELETE", "/v1/cache/{key}"): (f"/v1/cache/{CACHE_KEY}", {}, {404}),
    ("DELETE", "/v1/cache"): ("/v1/cache?project=default", {}, {404}),
    # Templates: another project's are not even named. The owner's PUT registers the one
    # the later routes read and run.
    ("PUT", "/v1/templates/{ref}"): ("/v1/templates/mine?project=default", TEMPLATE, {404}),
    ("GET", "/v1/templates"): ("/v1/templates?project=default", {}, {404}),
    ("GET", "/v1/templates/{ref}"): ("/v1/templates/mine@1?project=default", {}, {404}),
    ("POST", "/v1/templates/{ref}/runs"): ("/v1/templates/mine/runs", {"parameters": {}}, {404}),
    # Keys belong to a principal: another's key is not even named.
    ("DELETE", "/v1/keys/{key_id}"): ("/v1/keys/{owner_key}", {}, {404}),
}
# Routes that act on no project: the API key is the credential, nothing is shown, or the
# caller's own keys, whatever its projects.
OPEN = {("POST", "/v1/tokens"), ("GET", "/healthz"), ("GET", "/v1/keys"), ("POST", "/v1/keys")}


def routes() -> set[tuple[str, str]]:
    """Every route of the API, as its OpenAPI document lists them."""
    app = create_app(Gateway(Service("gateway", ServiceSettings()), max_body_bytes=1024))
    return {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }


def test_every_route_is_covered() -> None:
    assert routes() - OPEN == set(CALLS)


async def test_another_projects_caller_gets_404_or_403_everywhere(env: Env) -> None:
    async def view(query: WorkflowQuery) -> WorkflowView:
        return VIEW

    async def report(query: WorkflowQuery) -> WorkflowReport:
        return REPORT

    stubs = await rpc.serve(env.nc, "stubs", [(GET_WORKFLOW, view), (GET_REPORT, report)])
    key = SigningKey.load_or_create(env.auth_dir)
    intruder = key.sign(token_claims("intruder", ["other"], datetime.now(UTC), 600))
    owner_key = (await env.client.post("/v1/keys", headers=env.bearer())).json()["key_id"]
    entry = CacheEntry(key=CACHE_KEY, result="r", project="default", step="s",
                       workflow_id=WF, attempt=1, created_at=datetime.now(UTC))  # fmt: skip
    cache = await env.nc.jetstream().key_value(KV_STEP_CACHE)
    await cache.put(cache_entry_key(CACHE_KEY), msgspec.json.encode(entry))
    try:
        for (method, _), (template, body, statuses) in CALLS.items():
            path = template.format(owner_key=owner_key)
            theirs = await env.client.request(
                method, path, json=body or None, headers=env.bearer(intruder)
            )
            assert theirs.status_code in statuses, (path, theirs.status_code, theirs.text)
            # The owner gets an answer after, so the intruder's refusal was about ownership.
            mine = await env.client.request(method, path, json=body or None, headers=env.bearer())
            assert mine.status_code < 400, (path, mine.text)
    finally:
        await stubs.stop()
