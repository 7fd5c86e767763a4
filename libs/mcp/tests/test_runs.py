"""Waiting for a run: every change of its state or steps done is reported, nothing else,
until it ends or the time given is up."""

from typing import Any

import httpx

from aiop.client import AsyncClient
from aiop.mcp.runs import Progress, until_ended


def view(state: str, *steps: str) -> dict[str, Any]:
    return {"workflow_id": "wf", "state": state,
            "steps": [{"name": f"s{i}", "state": s} for i, s in enumerate(steps)]}  # fmt: skip


def gateway(*views: dict[str, Any]) -> AsyncClient:
    """A client whose status answers are ``views`` in turn, the last one again."""
    answers = list(views)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/workflows/wf"
        return httpx.Response(200, json=answers.pop(0) if len(answers) > 1 else answers[0])

    return AsyncClient("http://gateway", token="t", transport=httpx.MockTransport(answer))


async def test_each_change_is_reported_until_the_run_ends() -> None:
    heard: list[Progress] = []

    async def report(progress: Progress) -> None:
        heard.append(progress)

    client = gateway(
        view("submitted"),
        view("running", "running", "pending"),
        view("running", "running", "pending"),  # the same again: nothing to say
        view("running", "cached", "running"),
        view("failed", "cached", "failed"),
        view("succeeded", "cached", "succeeded"),  # never asked for: it had ended
    )
    async with client:
        ended = await until_ended(client, "wf", timeout=30, report=report)
    assert ended["state"] == "failed"
    assert [(p.state, p.done, p.total) for p in heard] == [
        ("submitted", 0, 0), ("running", 0, 2), ("running", 1, 2), ("failed", 2, 2),
    ]  # fmt: skip
    assert heard[2].message == "running: 1 of 2 steps done, s1 running"
    assert heard[-1].message == "failed: 2 of 2 steps done"


async def test_past_its_time_the_run_is_returned_as_it_is() -> None:
    heard: list[Progress] = []

    async def report(progress: Progress) -> None:
        heard.append(progress)

    async with gateway(view("running", "running")) as client:
        now = await until_ended(client, "wf", timeout=0.2, report=report)
    assert now["state"] == "running"
    assert len(heard) == 1  # asked several times meanwhile, the same each time
