"""Rate limits: a 429 problem with Retry-After and RateLimit headers where a limit is
passed, per principal, per address and on token requests; and never in normal use."""

from pathlib import Path

import pytest

from .conftest import GOOD, running

pytestmark = pytest.mark.integration


def assert_limited(reply, policy: str) -> None:  # type: ignore[no-untyped-def]
    assert reply.status_code == 429, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert int(reply.headers["retry-after"]) >= 1
    assert reply.headers["ratelimit-policy"].startswith(f'"{policy}";q=')
    assert reply.headers["ratelimit"].startswith(f'"{policy}";r=0;t=')


async def test_guessing_api_keys_is_stopped(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path, rate_limit_token_requests="5/minute") as env:
        # The fixture's own token request was the first of five.
        statuses = [
            (await env.client.post("/v1/tokens", json={"api_key": f"aiop_guess{n}"})).status_code
            for n in range(300)
        ]
        assert statuses[:4] == [401] * 4
        assert set(statuses[4:]) == {429}
        assert_limited(await env.client.post("/v1/tokens", json={"api_key": "x"}), "tokens")
        # Other routes from the same address are not held back by the token limit.
        assert (await env.client.get("/healthz")).status_code == 200
        assert (await env.client.get("/v1/workflows/abc", headers=env.bearer())).status_code != 429


async def test_a_principal_past_its_limit_gets_429(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path, rate_limit_per_principal="10/minute") as env:
        statuses = [
            (await env.client.get("/v1/workflows/abc", headers=env.bearer())).status_code
            for _ in range(12)
        ]
        assert 429 not in statuses[:10]
        assert statuses[10:] == [429, 429]
        assert_limited(await env.client.get("/v1/workflows/abc", headers=env.bearer()), "principal")


async def test_an_address_past_its_limit_gets_429(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path, rate_limit_per_address="20/minute") as env:
        statuses = [(await env.client.get("/v1/workflows/x")).status_code for _ in range(25)]
        # The fixture's token request counted too.
        assert statuses[:19] == [401] * 19
        assert set(statuses[19:]) == {429}
        assert_limited(await env.client.get("/v1/workflows/x"), "address")
        assert (await env.client.get("/healthz")).status_code == 200  # probes always answer


async def test_normal_use_is_never_limited(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path) as env:  # the default limits
        ids = []
        for _ in range(20):
            reply = await env.client.post("/v1/workflows", json=GOOD, headers=env.bearer())
            assert reply.status_code == 202, reply.text
            ids.append(reply.json()["workflow_id"])
        for _ in range(4):  # a client polling each of its workflows, as fast as it can
            for workflow_id in ids:
                reply = await env.client.get(f"/v1/workflows/{workflow_id}", headers=env.bearer())
                assert reply.status_code != 429, reply.text
