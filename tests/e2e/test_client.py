"""The Python client (``aiop.client``) against the platform ``aiop up`` starts: an API key
exchanged for a token, a submit waited for, its logs followed over SSE, runs listed page
after page, a retried submit that starts one run, and a 404 as ``NotFound``."""

import json
import time
import uuid
from typing import Any

import pytest

from aiop.client import AsyncClient, Client, NotFound
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e


def spec(marker: str, name: str = "sdk") -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"sdk": marker},
        "steps": [
            {"name": "greet", "run": ["echo", f"hello {marker}"], "cache": False},
            {"name": "after", "run": ["echo", "done"], "needs": ["greet"], "cache": False},
        ],
    }


def api_key(platform: Platform) -> str:
    stack = json.loads((platform.root / ".aiop" / "stack.json").read_text())
    return open(stack["dev_key_file"]).read().strip()


def wait(api: Client, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = api.status(workflow_id)
        if view["state"] in TERMINAL_WORKFLOW_STATES or time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def test_submit_wait_and_follow_logs_over_sse(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    with Client(platform.gateway_url, api_key=api_key(platform)) as api:
        workflow_id = api.submit(spec(marker))
        followed = list(api.follow_logs(workflow_id))  # from the start, live, to the end
        view = wait(api, workflow_id)
        assert api.token is not None  # the key was exchanged
    assert view["state"] == "succeeded", view
    assert [s["state"] for s in view["steps"]] == ["succeeded", "succeeded"]
    assert followed[-1] == {"end": "succeeded"}
    assert f"hello {marker}" in json.dumps(followed[:-1])


def test_runs_are_paged_and_a_submit_with_one_key_starts_one_run(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    key = f"sdk-{marker}"
    with Client(platform.gateway_url, token=platform.token) as api:
        ids = [api.submit(spec(marker)) for _ in range(2)]
        again = [api.submit(spec(marker), idempotency_key=key) for _ in range(2)]
        assert again[0] == again[1]  # the same key and body: the same run
        ids.append(again[0])
        for workflow_id in ids:
            assert wait(api, workflow_id)["state"] == "succeeded"
        paged = [w["workflow_id"] for w in api.iter_workflows(label=f"sdk={marker}", limit=1)]
        first = api.list_workflows(label=f"sdk={marker}", limit=1)
    assert sorted(paged) == sorted(ids)
    assert len(paged) == 3
    assert first["next_cursor"]  # one per page: there was more than one page
    assert paged[0] == first["workflows"][0]["workflow_id"]


def test_an_unknown_workflow_is_not_found(platform: Platform) -> None:
    with Client(platform.gateway_url, token=platform.token) as api:
        with pytest.raises(NotFound) as raised:
            api.status("no-such-workflow")
        with pytest.raises(NotFound):
            api.cancel("no-such-workflow")
    assert raised.value.status == 404
    assert raised.value.problem["status"] == 404


async def test_the_async_client_does_the_same(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    async with AsyncClient(platform.gateway_url, api_key=api_key(platform)) as api:
        workflow_id = await api.submit(spec(marker))
        followed = [entry async for entry in api.follow_logs(workflow_id)]
        assert followed[-1] == {"end": "succeeded"}
        listed = [w["workflow_id"] async for w in api.iter_workflows(label=f"sdk={marker}")]
        assert listed == [workflow_id]
        templates = await api.templates()
        assert "ci-cd" in {t["name"] for t in templates}
        with pytest.raises(NotFound):
            await api.template("no-such-template")
