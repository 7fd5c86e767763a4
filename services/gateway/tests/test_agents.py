"""Agents over HTTP against a real nats-server and auth: registration and agent tokens,
taking work an executor offers on the bus (published here as the executor does), the
lease (heartbeats, expiry, redelivery), reports arriving on the bus, and every refusal:
another agent's lease or id, a capability not offered, a user's token on agent routes,
an agent's token anywhere else."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.subscription import Subscription

from aiop.contracts.agents import (
    STREAM_AGENT_REPORTS,
    STREAM_AGENT_WORK,
    AgentReport,
    AgentWork,
    report_subject,
    withdrawn_subject,
    work_id,
    work_subject,
)
from aiop.contracts.cancels import CancelRequest
from aiop.contracts.events import now
from aiop.contracts.subjects import KV_CANCELS
from aiop.devstack import until

from .conftest import Env, running

pytestmark = pytest.mark.integration

LEASE_TTL_S = 3.0  # short: a lease let go is redelivered within the test's patience


@pytest.fixture
async def env(nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    # A body may hold more than an output may: the output's own bound is what is checked.
    async with running(nats_url, tmp_path, agent_lease_ttl_s=LEASE_TTL_S, agent_poll_wait_s=5.0,
                       max_body_bytes=256 * 1024) as ready:  # fmt: skip
        yield ready


async def register(env: Env, name: str, capabilities: list[str], concurrency: int = 1) -> Any:
    body = {"name": name, "capabilities": capabilities, "concurrency": concurrency}
    reply = await env.client.post("/v1/agents", json=body, headers=env.bearer())
    assert reply.status_code == 201, reply.text
    return reply.json()


async def offer(env: Env, workflow_id: str, capability: str, step: str = "ask") -> AgentWork:
    """What the executor does for one try of an agent step."""
    work = AgentWork(
        work_id=work_id(workflow_id, 1, step, 1), workflow_id=workflow_id, attempt=1,
        step=step, try_number=1, project="default", capability=capability,
        input={"question": f"what of {workflow_id}?"}, needs={"before": {"n": 1}}, timeout_s=60,
    )  # fmt: skip
    await env.nc.jetstream().publish(work_subject("default", capability),
                                     msgspec.json.encode(work),
                                     headers={"Nats-Msg-Id": work.work_id})  # fmt: skip
    return work


async def poll(env: Env, agent: Any, wait: float = 10, most: int = 1) -> list[Any]:
    reply = await env.client.post(f"/v1/agents/{agent['agent_id']}/work",
                                  params={"wait": wait, "max": most},
                                  headers=env.bearer(agent["token"]), timeout=wait + 10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return list(reply.json()["leases"])


async def on_lease(env: Env, agent: Any, lease_id: str, what: str, body: Any = None) -> Any:
    path = f"/v1/agents/{agent['agent_id']}/leases/{lease_id}/{what}"
    return await env.client.post(path, json=body, headers=env.bearer(agent["token"]))


async def reports(env: Env, work: AgentWork) -> Subscription:
    """The step's reports as the executor reads them, from the first."""
    return await env.nc.jetstream().subscribe(
        report_subject(work.workflow_id, work.attempt, work.step),
        stream=STREAM_AGENT_REPORTS, ordered_consumer=True,
    )  # fmt: skip


async def next_report(sub: Subscription) -> tuple[AgentReport, dict[str, str]]:
    msg = await sub.next_msg(timeout=5)
    return msgspec.json.decode(msg.data, type=AgentReport), dict(msg.headers or {})


async def queued(env: Env) -> int:
    return (await env.nc.jetstream().stream_info(STREAM_AGENT_WORK)).state.messages


async def test_an_agent_registers_renews_and_is_listed_with_its_token_kept_to_its_routes(
    env: Env,
) -> None:
    agent = await register(env, "summarizer", ["summarize", "translate", "summarize"], 2)
    assert agent["agent_id"].startswith("ag-")
    assert len(agent["agent_id"]) == 19
    assert agent["capabilities"] == ["summarize", "translate"]
    assert (agent["project"], agent["concurrency"], agent["lease_ttl_s"]) == ("default", 2, 3.0)
    assert agent["heartbeat_s"] == pytest.approx(1.0)
    assert agent["poll_wait_s"] == 5.0
    mine = env.bearer(agent["token"])

    # An agent's token is good on its own agent routes, and nowhere else.
    assert (await env.client.get("/v1/workflows", headers=mine)).status_code == 403
    assert (await env.client.get("/v1/agents", headers=mine)).status_code == 403
    refused = await env.client.post("/v1/agents", json={"name": "x", "capabilities": ["a"]},
                                    headers=mine)  # fmt: skip
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:aiop:problem:forbidden"
    assert await poll(env, agent, wait=0) == []
    # A user's token is no agent's.
    user = await env.client.post(f"/v1/agents/{agent['agent_id']}/work", headers=env.bearer())
    assert user.status_code == 403

    renewed = await env.client.post(f"/v1/agents/{agent['agent_id']}/token", headers=mine)
    assert renewed.status_code == 200, renewed.text
    assert set(renewed.json()) == {"token", "expires_at"}
    assert await poll(env, {**agent, "token": renewed.json()["token"]}, wait=0) == []

    other = await register(env, "other", ["translate"])
    listed = (await env.client.get("/v1/agents", headers=env.bearer())).json()["agents"]
    assert [(a["name"], a["load"], a["stale"]) for a in listed] == [
        ("other", 0, False), ("summarizer", 0, False),
    ]  # fmt: skip
    assert listed[1]["principal"] == "dev"
    assert listed[1]["capabilities"] == ["summarize", "translate"]
    shown = await env.client.get(f"/v1/agents/{other['agent_id']}", headers=env.bearer())
    assert shown.json()["agent_id"] == other["agent_id"]
    theirs = await env.client.post(f"/v1/agents/{other['agent_id']}/work", headers=mine)
    assert theirs.status_code == 403
    gone = await env.client.delete(f"/v1/agents/{other['agent_id']}", headers=mine)
    assert gone.status_code == 403

    # Deregistered: its token renews nothing, and it is no longer listed.
    assert (
        await env.client.delete(f"/v1/agents/{agent['agent_id']}", headers=mine)
    ).status_code == 204
    again = await env.client.post(f"/v1/agents/{agent['agent_id']}/token", headers=mine)
    assert again.status_code == 404
    assert (
        await env.client.get(f"/v1/agents/{agent['agent_id']}", headers=env.bearer())
    ).status_code == 404
    listed = (await env.client.get("/v1/agents", headers=env.bearer())).json()["agents"]
    assert [a["name"] for a in listed] == ["other"]
    by_user = await env.client.delete(f"/v1/agents/{other['agent_id']}", headers=env.bearer())
    assert by_user.status_code == 204


async def test_registration_is_checked(env: Env) -> None:
    for body in (
        {"name": "a b", "capabilities": ["x"]},
        {"name": "a", "capabilities": []},
        {"name": "a", "capabilities": ["x.y"]},
        {"name": "a", "capabilities": ["x"], "concurrency": 0},
    ):
        reply = await env.client.post("/v1/agents", json=body, headers=env.bearer())
        assert reply.status_code == 422, body
        assert reply.json()["errors"][0]["pointer"].startswith(
            ("/name", "/capabilities", "/concurrency")
        )
    outside = {"name": "a", "capabilities": ["x"], "project": "elsewhere"}
    assert (
        await env.client.post("/v1/agents", json=outside, headers=env.bearer())
    ).status_code == 404
    assert (
        await env.client.post("/v1/agents", json={"name": "a", "capabilities": ["x"]})
    ).status_code == 401


async def test_work_is_leased_reported_on_and_acked_once(env: Env) -> None:
    agent = await register(env, "asker", ["ask"], concurrency=2)
    started = time.monotonic()
    assert await poll(env, agent, wait=1) == []  # the long poll ends empty after its wait
    assert time.monotonic() - started >= 0.9

    waiting = asyncio.create_task(poll(env, agent, wait=20))
    work = await offer(env, "wf-1", "ask")
    (lease,) = await asyncio.wait_for(waiting, 10)  # the poll waiting wakes with the work
    assert lease["work_id"] == work.work_id
    assert (lease["workflow_id"], lease["attempt"], lease["step"], lease["try_number"]) == (
        "wf-1", 1, "ask", 1,
    )  # fmt: skip
    assert lease["input"] == {"question": "what of wf-1?"}
    assert lease["needs"] == {"before": {"n": 1}}
    assert (lease["capability"], lease["timeout_s"], lease["lease_ttl_s"]) == ("ask", 60, 3.0)
    assert lease["lease_id"].endswith("-1")
    listed = (await env.client.get("/v1/agents", headers=env.bearer())).json()["agents"]
    assert listed[0]["load"] == 1

    sub = await reports(env, work)
    beat = await on_lease(env, agent, lease["lease_id"], "heartbeat")
    assert beat.json() == {"cancelled": False, "lease_ttl_s": 3.0}
    progress = await on_lease(env, agent, lease["lease_id"], "progress",
                              {"percent": 40, "message": "reading", "partial": {"seen": 2}})  # fmt: skip
    assert progress.status_code == 200
    assert progress.json()["cancelled"] is False
    said, _ = await next_report(sub)
    assert (said.kind, said.percent, said.message, said.partial) == (
        "progress",
        40,
        "reading",
        {"seen": 2},
    )
    assert (said.work_id, said.lease_id, said.agent_id) == (
        work.work_id,
        lease["lease_id"],
        agent["agent_id"],
    )
    lines = [{"stream": "stdout", "text": "thinking"}, {"stream": "stderr", "text": "hmm"}]
    assert (
        await on_lease(env, agent, lease["lease_id"], "logs", {"lines": lines})
    ).status_code == 200
    said, _ = await next_report(sub)
    assert said.kind == "log"
    assert [(x.stream, x.text) for x in said.lines] == [
        ("stdout", "thinking"),
        ("stderr", "hmm"),
    ]

    done = await on_lease(env, agent, lease["lease_id"], "result", {"output": {"answer": 42}})
    assert done.status_code == 200, done.text
    assert done.json() == {"accepted": True}
    said, headers = await next_report(sub)
    assert (said.kind, said.output) == ("result", {"answer": 42})
    assert headers["Nats-Msg-Id"] == f"{work.work_id}.result"
    assert await queued(env) == 0  # acked: gone from the work-queue stream
    # The same result again is answered the same; anything else on the lease is too late.
    again = await on_lease(env, agent, lease["lease_id"], "result", {"output": {"answer": 42}})
    assert again.status_code == 200
    late = await on_lease(env, agent, lease["lease_id"], "heartbeat")
    assert late.status_code == 409
    assert late.json()["type"] == "urn:aiop:problem:lease-lost"
    failed = await on_lease(env, agent, lease["lease_id"], "failure", {"error": "no"})
    assert failed.status_code == 409
    with pytest.raises(TimeoutError):
        await sub.next_msg(timeout=0.5)  # the repeat published nothing new
    listed = (await env.client.get("/v1/agents", headers=env.bearer())).json()["agents"]
    assert listed[0]["load"] == 0


async def test_a_lease_not_heartbeated_goes_to_the_next_poll_under_a_new_id(env: Env) -> None:
    agent = await register(env, "slow", ["ask"], concurrency=1)
    other = await register(env, "quick", ["ask"], concurrency=1)
    work = await offer(env, "wf-2", "ask")
    (first,) = await poll(env, agent)
    assert first["lease_id"].endswith("-1")
    (second,) = await poll(env, other, wait=3 * LEASE_TTL_S)  # after the first one's life
    assert second["work_id"] == work.work_id
    sequence = first["lease_id"].partition("-")[0]
    assert second["lease_id"] == f"{sequence}-2"  # the same message, delivered again
    stale = await on_lease(env, agent, first["lease_id"], "result", {"output": {"late": True}})
    assert stale.status_code == 409
    assert stale.json()["type"] == "urn:aiop:problem:lease-lost"
    # The old holder's heartbeat does not keep it either.
    assert (await on_lease(env, agent, first["lease_id"], "heartbeat")).status_code == 409
    sub = await reports(env, work)
    failed = await on_lease(env, other, second["lease_id"], "failure", {"error": "cannot"})
    assert failed.status_code == 200
    said, headers = await next_report(sub)
    assert (said.kind, said.error, said.agent_id) == ("failure", "cannot", other["agent_id"])
    assert headers["Nats-Msg-Id"] == f"{work.work_id}.failure"


async def test_heartbeats_keep_a_lease_past_its_life(env: Env) -> None:
    agent = await register(env, "steady", ["ask"])
    other = await register(env, "eager", ["ask"])
    await offer(env, "wf-3", "ask")
    (lease,) = await poll(env, agent)
    beating = asyncio.create_task(_heartbeat(env, agent, lease["lease_id"], LEASE_TTL_S / 3))
    try:
        assert await poll(env, other, wait=2 * LEASE_TTL_S) == []  # never redelivered
    finally:
        beating.cancel()
    done = await on_lease(env, agent, lease["lease_id"], "result", {"output": {}})
    assert done.status_code == 200


async def _heartbeat(env: Env, agent: Any, lease_id: str, every_s: float) -> None:
    while True:
        reply = await on_lease(env, agent, lease_id, "heartbeat")
        assert reply.status_code == 200, reply.text
        await asyncio.sleep(every_s)  # the agent's own rhythm, not a wait for an event


async def test_an_agent_takes_only_its_capabilities_and_reports_only_its_leases(
    env: Env,
) -> None:
    alpha = await register(env, "alpha", ["alpha"])
    beta = await register(env, "beta", ["beta"])
    await offer(env, "wf-4", "beta")
    assert await poll(env, alpha, wait=1) == []
    (lease,) = await poll(env, beta)
    for what, body in (("heartbeat", None), ("progress", {"percent": 1}),
                       ("result", {"output": {"stolen": True}})):  # fmt: skip
        refused = await on_lease(env, alpha, lease["lease_id"], what, body)
        assert refused.status_code == 403, (what, refused.text)
    # Nor on beta's id with its own token.
    path = f"/v1/agents/{beta['agent_id']}/leases/{lease['lease_id']}/heartbeat"
    assert (await env.client.post(path, headers=env.bearer(alpha["token"]))).status_code == 403
    assert (await on_lease(env, beta, lease["lease_id"], "heartbeat")).json()["cancelled"] is False
    assert (await on_lease(env, alpha, "99-1", "heartbeat")).status_code == 409
    assert (await on_lease(env, alpha, "not-a-lease", "heartbeat")).status_code == 409


async def test_withdrawn_or_cancelled_work_is_called_off_and_never_handed_out(env: Env) -> None:
    agent = await register(env, "worker", ["ask"], concurrency=4)
    js = env.nc.jetstream()
    held, cancelled = await offer(env, "wf-5", "ask"), await offer(env, "wf-6", "ask")
    leases = {x["work_id"]: x["lease_id"] for x in await poll(env, agent, most=2)}
    assert set(leases) == {held.work_id, cancelled.work_id}
    await _withdraw(env, held)
    cancels = await js.key_value(KV_CANCELS)
    await cancels.create(
        "wf-6", msgspec.json.encode(CancelRequest(principal="dev", requested_at=now()))
    )
    for work in (held, cancelled):
        beat = await on_lease(env, agent, leases[work.work_id], "heartbeat")
        assert beat.json()["cancelled"] is True, work.work_id

    # Still queued when called off: acked unseen, and the work after them is handed out.
    gone = await offer(env, "wf-7", "ask")
    await offer(env, "wf-6", "ask", step="again")  # of the cancelled workflow
    await _withdraw(env, gone)
    wanted = await offer(env, "wf-8", "ask")
    assert await queued(env) == 5
    taken = await poll(env, agent, most=2)
    assert [x["work_id"] for x in taken] == [wanted.work_id]
    assert await until(lambda: _queued_is(env, 3), 5, "the called-off work acked")


async def _queued_is(env: Env, count: int) -> bool:
    return await queued(env) == count


async def _withdraw(env: Env, work: AgentWork) -> None:
    report = AgentReport(kind="withdrawn", work_id=work.work_id)
    subject = withdrawn_subject(work.workflow_id, work.attempt, work.step, work.try_number)
    await env.nc.jetstream().publish(subject, msgspec.json.encode(report))


async def test_an_agent_takes_no_more_than_its_concurrency(env: Env) -> None:
    agent = await register(env, "single", ["ask"], concurrency=1)
    await offer(env, "wf-9", "ask")
    await offer(env, "wf-10", "ask")
    (first,) = await poll(env, agent, most=5)
    assert await poll(env, agent, wait=1) == []  # full: the second waits
    waiting = asyncio.create_task(poll(env, agent, wait=10))
    done = await on_lease(env, agent, first["lease_id"], "result", {"output": {"n": 1}})
    assert done.status_code == 200
    (second,) = await asyncio.wait_for(waiting, 10)  # room again: the waiting poll takes it
    assert second["work_id"] != first["work_id"]


async def test_reports_are_checked(env: Env) -> None:
    agent = await register(env, "checked", ["ask"])
    await offer(env, "wf-11", "ask")
    (lease,) = await poll(env, agent)
    big = {"output": {"text": "x" * (64 * 1024)}}
    too_big = await on_lease(env, agent, lease["lease_id"], "result", big)
    assert too_big.status_code == 422
    assert too_big.json()["type"] == "urn:aiop:problem:output-too-large"
    for what, body in (("result", {"output": [1]}), ("progress", {"percent": 101}),
                       ("logs", {"lines": [{"stream": "tty", "text": "x"}]}),
                       ("failure", {"error": ""})):  # fmt: skip
        reply = await on_lease(env, agent, lease["lease_id"], what, body)
        assert reply.status_code == 422, (what, reply.text)
    assert (await on_lease(env, agent, lease["lease_id"], "heartbeat")).status_code == 200


async def test_work_no_agent_can_read_is_dead_lettered(env: Env) -> None:
    agent = await register(env, "reader", ["ask"])
    js = env.nc.jetstream()
    await js.publish(work_subject("default", "ask"), b"not json")
    await offer(env, "wf-12", "ask")
    taken = await poll(env, agent)
    assert [x["workflow_id"] for x in taken] == ["wf-12"]
    dead = await js.stream_info("AIOP_DLQ")
    assert dead.state.messages == 1
