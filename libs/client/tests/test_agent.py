"""The agent SDK against a fake gateway speaking the agent protocol (docs/adr/0014):
registration and its tokens, leases run and reported once, heartbeats, progress and
logs, cancellation, lost leases, the concurrency limit, retries, and stopping."""

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aiop.client import RetryPolicy
from aiop.client.agent import Agent, Context, StepFailure
from aiop.client.agent._lease import as_output, error_text

URL = "http://gateway.test"
Json = dict[str, Any]


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    auth: str | None


def problem(status: int, detail: str, kind: str = "") -> httpx.Response:
    body = {"type": f"urn:aiop:problem:{kind}" if kind else "about:blank", "title": detail,
            "status": status, "detail": detail}  # fmt: skip
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def in_(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


class FakeGateway:
    """The gateway's agent routes, in memory. Tests queue leases with ``offer``, script
    answers with ``cancelled``, ``lost`` and ``script``, and wait with ``until``."""

    def __init__(self, *, token_ttl: float = 900.0, lease_ttl: float = 5.0,
                 heartbeat: float = 0.05, poll_wait: float = 0.2) -> None:  # fmt: skip
        self.token_ttl, self.lease_ttl = token_ttl, lease_ttl
        self.heartbeat, self.poll_wait = heartbeat, poll_wait
        self.seen: list[Seen] = []
        self.changed = asyncio.Condition()
        self.queue: list[Json] = []
        self.agent_id: str | None = None
        self.token: str | None = None  # the one agent token accepted
        self.tokens_issued = 0
        self.registrations = 0
        self.token_expires = 0.0  # time.monotonic() when the agent token runs out
        self.renewed_in_time: list[bool] = []
        self.outstanding: set[str] = set()  # leases given and not ended
        self.polls: list[tuple[int, int]] = []  # (max asked, leases outstanding then)
        self.cancelled: set[str] = set()
        self.lost: set[str] = set()
        self.script: dict[str, list[int]] = {}  # report kind -> statuses to answer first
        self.registered = threading.Event()

    # -- for the tests ------------------------------------------------------------------

    async def offer(self, *leases: Json) -> None:
        async with self.changed:
            self.queue += leases
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def reports(self, lease_id: str, kind: str | None = None) -> list[Seen]:
        prefix = f"/leases/{lease_id}/"
        return [s for s in self.seen if prefix in s.path and (kind is None or s.path.endswith(
            f"/{kind}"))]  # fmt: skip

    def ended(self, lease_id: str) -> bool:
        return lease_id not in self.outstanding and bool(self.reports(lease_id))

    def lines(self, lease_id: str) -> list[Json]:
        return [line for s in self.reports(lease_id, "logs") for line in s.body["lines"]]

    def forget_agent(self) -> None:
        """As after the agent was away too long: its id and token mean nothing now."""
        self.agent_id = self.token = None

    # -- the routes ---------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.seen.append(Seen(request.method, request.url.path, dict(request.url.params), body,
                              request.headers.get("authorization")))  # fmt: skip
        try:
            return await self.answer(request, body)
        finally:
            async with self.changed:
                self.changed.notify_all()

    async def answer(self, request: httpx.Request, body: Any) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")  # v1 agents ID ...
        if parts == ["v1", "tokens"]:
            assert body == {"api_key": "key"}
            return httpx.Response(200, json={"token": "user-tok", "expires_at": in_(3600)})
        if parts == ["v1", "agents"]:
            assert request.headers["authorization"] == "Bearer user-tok"
            return self.register(body)
        if request.headers.get("authorization") != f"Bearer {self.token}" or \
                parts[2] != self.agent_id:  # fmt: skip
            return problem(401, "not this agent's token")
        route = parts[3:]
        if request.method == "DELETE" and not route:
            self.forget_agent()
            return httpx.Response(204)
        if route == ["token"]:
            self.renewed_in_time.append(time.monotonic() < self.token_expires)
            return httpx.Response(200, json=self.new_token())
        if route == ["work"]:
            return await self.work(int(request.url.params["max"]))
        if route[0] == "leases":
            return self.report(route[1], route[2], body)
        return problem(404, "no such route")

    def register(self, body: Json) -> httpx.Response:
        self.registrations += 1
        self.agent_id = f"ag-{self.registrations}"
        self.registered.set()
        return httpx.Response(201, json={
            **body, "agent_id": self.agent_id, **self.new_token(), "lease_ttl_s": self.lease_ttl,
            "heartbeat_s": self.heartbeat, "poll_wait_s": self.poll_wait,
        })  # fmt: skip

    def new_token(self) -> Json:
        self.tokens_issued += 1
        self.token = f"agent-tok-{self.tokens_issued}"
        self.token_expires = time.monotonic() + self.token_ttl
        return {"token": self.token, "expires_at": in_(self.token_ttl)}

    async def work(self, most: int) -> httpx.Response:
        self.polls.append((most, len(self.outstanding)))
        async with self.changed:
            with suppress(TimeoutError):  # an empty answer after the wait, as the gateway's
                await asyncio.wait_for(self.changed.wait_for(lambda: self.queue), self.poll_wait)
            given, self.queue = self.queue[:most], self.queue[most:]
        self.outstanding.update(lease["lease_id"] for lease in given)
        return httpx.Response(200, json={"leases": given})

    def report(self, lease_id: str, kind: str, body: Any) -> httpx.Response:
        if lease_id in self.lost:
            return problem(409, "another agent holds this step", "lease-lost")
        if self.script.get(kind):
            return problem(self.script[kind].pop(0), "scripted")
        if kind in ("result", "failure"):
            self.outstanding.discard(lease_id)
            return httpx.Response(200, json={"accepted": True})
        return httpx.Response(200, json={"cancelled": lease_id in self.cancelled,
                                         "lease_ttl_s": self.lease_ttl})  # fmt: skip


def lease(n: int, capability: str = "work", **fields: Any) -> Json:
    return {"lease_id": f"{n}-1", "work_id": f"wf-1.1.s{n}.1", "workflow_id": "wf-1",
            "attempt": 1, "step": f"s{n}", "try_number": 1, "capability": capability,
            "input": {}, "needs": {}, "timeout_s": None, "lease_ttl_s": 5.0, **fields}  # fmt: skip


def make_agent(gateway: FakeGateway, **kwargs: Any) -> Agent:
    kwargs.setdefault("grace", 5.0)
    return Agent("tester", url=URL, api_key="key", transport=httpx.MockTransport(gateway.handle),
                 retry=RetryPolicy(backoff=0.01, max_backoff=0.02, jitter=0), **kwargs)  # fmt: skip


@asynccontextmanager
async def serving(agent: Agent) -> AsyncIterator[None]:
    task = asyncio.create_task(agent.serve())
    try:
        yield
    finally:
        agent.stop()
        await asyncio.wait_for(task, 5)


async def forever(input: Json, ctx: Context) -> Json:
    await asyncio.Event().wait()
    return {}


# -- registration and tokens ------------------------------------------------------------


async def test_it_registers_with_a_user_token_then_uses_only_its_own() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway, concurrency=3, project="research")
    agent.capability("summarize")(forever)
    agent.capability("review-code")(forever)
    async with serving(agent):
        await gateway.until(lambda: gateway.polls)
    token, register, poll, *_, last = gateway.seen
    assert (token.path, token.auth) == ("/v1/tokens", None)
    assert (register.path, register.auth) == ("/v1/agents", "Bearer user-tok")
    assert register.body == {"name": "tester", "project": "research",
                             "capabilities": ["review-code", "summarize"], "concurrency": 3}  # fmt: skip
    assert poll.path == "/v1/agents/ag-1/work"
    assert poll.params == {"wait": "0.2", "max": "3"}
    assert (last.method, last.path) == ("DELETE", "/v1/agents/ag-1")
    assert {s.auth for s in gateway.seen[2:]} == {"Bearer agent-tok-1"}


async def test_the_agent_token_is_renewed_before_it_expires() -> None:
    gateway = FakeGateway(token_ttl=1.5)  # renewed at 2/3 of its life, 1 s
    agent = make_agent(gateway)
    agent.capability("work")(forever)
    async with serving(agent):
        await gateway.until(lambda: gateway.tokens_issued == 2)
        await gateway.until(lambda: gateway.polls and gateway.seen[-1].auth == "Bearer agent-tok-2")
    assert gateway.renewed_in_time == [True]
    (renewal,) = [s for s in gateway.seen if s.path.endswith("/token")]
    assert (renewal.method, renewal.auth) == ("POST", "Bearer agent-tok-1")
    assert gateway.registrations == 1


async def test_an_agent_the_gateway_forgot_registers_again() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    agent.capability("work")(forever)
    async with serving(agent):
        await gateway.until(lambda: gateway.polls)
        gateway.forget_agent()  # the next poll is refused, and so is renewing its token
        await gateway.until(lambda: any(s.path == "/v1/agents/ag-2/work" for s in gateway.seen))
    assert gateway.registrations == 2
    assert gateway.seen[-1].path == "/v1/agents/ag-2"


# -- a lease, start to end --------------------------------------------------------------


async def test_a_lease_is_run_and_its_result_reported_once() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    seen: list[tuple[Json, Context]] = []

    @agent.capability("summarize")
    async def summarize(input: Json, ctx: Context) -> Json:
        seen.append((input, ctx))
        return {"summary": input["text"][:5], "from": sorted(ctx.needs)}

    async with serving(agent):
        await gateway.offer(lease(1, "summarize", input={"text": "hello world"},
                                  needs={"fetch": {"bytes": 3}}))  # fmt: skip
        await gateway.until(lambda: gateway.ended("1-1"))
    ((given, ctx),) = seen
    assert given == {"text": "hello world"}
    assert (ctx.workflow_id, ctx.step, ctx.attempt, ctx.try_number, ctx.lease_id) == (
        "wf-1", "s1", 1, 1, "1-1")  # fmt: skip
    assert ctx.needs == {"fetch": {"bytes": 3}}
    assert not ctx.cancelled
    (result,) = gateway.reports("1-1", "result")
    assert result.body == {"output": {"summary": "hello", "from": ["fetch"]}}
    assert result.auth == "Bearer agent-tok-1"
    assert not gateway.reports("1-1", "failure")


@pytest.mark.parametrize(("value", "output"), [
    ({"a": 1}, {"a": 1}), (3, {"result": 3}), ("text", {"result": "text"}),
    ([1, 2], {"result": [1, 2]}), (None, {}),
])  # fmt: skip
def test_a_return_value_becomes_a_json_object(value: Any, output: Json) -> None:
    assert as_output(value) == output


@pytest.mark.parametrize(("value", "says"), [
    ({"x": object()}, "not JSON"), ({"x": float("nan")}, "not JSON"),
    ({"big": "x" * 70_000}, "at most 65536"),
])  # fmt: skip
def test_an_output_that_cannot_be_a_summary_fails_the_step(value: Any, says: str) -> None:
    with pytest.raises(StepFailure, match=says):
        as_output(value)


def test_an_error_is_never_empty_nor_longer_than_the_gateway_takes() -> None:
    assert error_text("bad input") == "bad input"
    assert error_text(" ") == "the step failed (no error message)"
    long = error_text("x" * 20_000)
    assert len(long) <= 16 * 1024
    assert long.endswith("[... cut short]")


async def test_progress_and_log_lines_are_reported_before_the_result() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        await ctx.progress(40, "reading", partial={"seen": 2})
        await ctx.log("one\ntwo")
        ctx.logger.warning("careful")
        return {"done": True}

    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.ended("1-1"))
    (progress,) = gateway.reports("1-1", "progress")
    assert progress.body == {"percent": 40, "message": "reading", "partial": {"seen": 2}}
    assert gateway.lines("1-1") == [
        {"stream": "stdout", "text": "one"}, {"stream": "stdout", "text": "two"},
        {"stream": "stderr", "text": "WARNING careful"},
    ]  # fmt: skip
    assert gateway.reports("1-1")[-1].path.endswith("/result")


async def test_a_slow_handler_keeps_its_lease_with_heartbeats() -> None:
    gateway = FakeGateway(heartbeat=0.02)
    agent = make_agent(gateway)
    release = asyncio.Event()

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        await ctx.progress(10, "started")
        await ctx.log("working")
        await release.wait()
        return {"slow": True}

    async with serving(agent):
        await gateway.offer(lease(1))
        # Progress goes at once, lines with a heartbeat, and heartbeats keep going.
        await gateway.until(lambda: gateway.reports("1-1", "progress"))
        await gateway.until(lambda: gateway.lines("1-1") and
                            len(gateway.reports("1-1", "heartbeat")) >= 3)  # fmt: skip
        assert not gateway.reports("1-1", "result")
        release.set()
        await gateway.until(lambda: gateway.ended("1-1"))
    assert gateway.reports("1-1", "result")[0].body == {"output": {"slow": True}}


async def test_a_sync_handler_runs_in_a_thread_and_reports_from_there() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)

    @agent.capability("work")
    def work(input: Json, ctx: Context) -> str:
        ctx.progress(50, "halfway")  # no await in a thread: queued all the same
        ctx.log("from a thread")
        return threading.current_thread().name

    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.ended("1-1"))
    (result,) = gateway.reports("1-1", "result")
    assert result.body["output"]["result"].startswith("agent-tester")
    assert gateway.reports("1-1", "progress")[0].body["message"] == "halfway"
    assert gateway.lines("1-1") == [{"stream": "stdout", "text": "from a thread"}]


@pytest.mark.parametrize(("error", "reported"), [
    (ValueError("no text given"), "ValueError: no text given"),
    (StepFailure("nothing to summarise"), "nothing to summarise"),
])  # fmt: skip
async def test_a_handler_that_raises_reports_a_failure(error: Exception, reported: str) -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        raise error

    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.ended("1-1"))
    (failure,) = gateway.reports("1-1", "failure")
    assert failure.body == {"error": reported}
    assert not gateway.reports("1-1", "result")
    traceback = [line["text"] for line in gateway.lines("1-1") if line["stream"] == "stderr"]
    if isinstance(error, StepFailure):
        assert traceback == []  # its message says enough
    else:  # from the handler's frame on: the agent's own are left out
        assert traceback[0] == "Traceback (most recent call last):"
        assert "in work" in traceback[1]
        assert traceback[-1] == reported


async def test_ctx_fail_and_an_unknown_capability_are_failures() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        ctx.fail("input has no text")

    async with serving(agent):
        await gateway.offer(lease(1), lease(2, "translate"))
        await gateway.until(lambda: gateway.ended("1-1") and gateway.ended("2-1"))
    assert gateway.reports("1-1", "failure")[0].body == {"error": "input has no text"}
    assert gateway.reports("2-1", "failure")[0].body == {
        "error": "this agent offers no capability 'translate'"}  # fmt: skip


# -- when the lease ends early ----------------------------------------------------------


@pytest.mark.parametrize("how", ["cancelled", "lost"])
async def test_a_cancelled_or_lost_lease_cancels_the_handler_and_says_nothing_more(
    how: str,
) -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    stopped = asyncio.Event()
    contexts: list[Context] = []

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        contexts.append(ctx)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise
        return {}

    getattr(gateway, how).add("1-1")  # the first heartbeat says so
    async with serving(agent):
        await gateway.offer(lease(1))
        await asyncio.wait_for(stopped.wait(), 5)
    assert contexts[0].cancelled
    (heartbeat,) = gateway.reports("1-1")  # then not a word on that lease
    assert heartbeat.path.endswith("/heartbeat")


async def test_a_lease_the_gateway_cannot_hear_about_runs_out_and_is_dropped() -> None:
    gateway = FakeGateway(heartbeat=0.02)
    agent = make_agent(gateway)
    stopped = asyncio.Event()

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise
        return {}

    gateway.script["heartbeat"] = [503] * 1000  # retried, until the lease's time is up
    async with serving(agent):
        await gateway.offer(lease(1, lease_ttl_s=0.3))
        await asyncio.wait_for(stopped.wait(), 5)
    assert len(gateway.reports("1-1", "heartbeat")) > 1
    assert not gateway.reports("1-1", "result")


async def test_a_result_refused_as_lease_lost_is_dropped_not_retried() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    agent.capability("work")(lambda input, ctx: {"late": True})
    gateway.lost.add("1-1")
    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.reports("1-1"))
    assert [s.path.rsplit("/", 1)[1] for s in gateway.reports("1-1")] == ["result"]


async def test_the_result_is_sent_again_after_a_503() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    agent.capability("work")(lambda input, ctx: {"n": 1})
    gateway.script["result"] = [503, 503]
    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.ended("1-1"))
    results = gateway.reports("1-1", "result")
    assert len(results) == 3
    assert all(r.body == {"output": {"n": 1}} for r in results)


async def test_an_output_the_gateway_refuses_becomes_a_failure() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    agent.capability("work")(lambda input, ctx: {"n": 1})
    gateway.script["result"] = [422]
    async with serving(agent):
        await gateway.offer(lease(1))
        await gateway.until(lambda: gateway.ended("1-1"))
    assert gateway.reports("1-1", "failure")[0].body == {"error": "output refused: scripted"}


# -- concurrency and stopping -----------------------------------------------------------


async def test_never_more_steps_at_once_than_its_concurrency() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway, concurrency=2)
    gate, full = asyncio.Event(), asyncio.Event()
    running: list[int] = []
    most = 0

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        nonlocal most
        running.append(1)
        most = max(most, len(running))
        if most == 2:
            full.set()
        await gate.wait()
        running.pop()
        return {}

    async with serving(agent):
        await gateway.offer(*(lease(n) for n in range(1, 6)))
        await asyncio.wait_for(full.wait(), 5)
        gate.set()
        await gateway.until(lambda: all(gateway.ended(f"{n}-1") for n in range(1, 6)))
    assert most == 2
    # Each poll asked for the slots free then, and none was made with every slot taken.
    assert all(1 <= asked <= 2 - outstanding for asked, outstanding in gateway.polls)
    assert gateway.polls[0] == (2, 0)


async def test_stopping_takes_no_more_work_and_lets_the_steps_finish() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    gate = asyncio.Event()

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        await gate.wait()
        return {"finished": True}

    task = asyncio.create_task(agent.serve())
    await gateway.offer(lease(1))
    await gateway.until(lambda: gateway.reports("1-1", "heartbeat"))
    agent.stop()
    stopped_at = len(gateway.seen)
    gate.set()
    await asyncio.wait_for(task, 5)
    after = [s.path.rsplit("/", 1)[-1] for s in gateway.seen[stopped_at:]]
    assert "work" not in after
    assert after[-2:] == ["result", "ag-1"]  # the result, then the deregistration
    assert gateway.seen[-1].method == "DELETE"


async def test_stopping_twice_cancels_the_steps() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway, grace=60)
    cancelled = asyncio.Event()

    @agent.capability("work")
    async def work(input: Json, ctx: Context) -> Json:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    task = asyncio.create_task(agent.serve())
    await gateway.offer(lease(1))
    await gateway.until(lambda: gateway.reports("1-1", "heartbeat"))
    agent.stop()
    agent.stop()
    await asyncio.wait_for(task, 5)
    assert cancelled.is_set()
    assert not gateway.reports("1-1", "result")
    assert gateway.seen[-1].method == "DELETE"


def test_run_stops_on_sigterm_and_deregisters() -> None:
    gateway = FakeGateway()
    agent = make_agent(gateway)
    agent.capability("work")(forever)

    def terminate() -> None:
        if gateway.registered.wait(5):
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            agent.stop()

    killer = threading.Thread(target=terminate)
    killer.start()
    agent.run()
    killer.join()
    assert gateway.registrations == 1
    assert (gateway.seen[-1].method, gateway.seen[-1].path) == ("DELETE", "/v1/agents/ag-1")


# -- configuration ----------------------------------------------------------------------


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOP_URL", "http://elsewhere:8080")
    monkeypatch.setenv("AIOP_API_KEY", "k")
    monkeypatch.setenv("AIOP_TOKEN", "t")
    agent = Agent("a")
    assert (agent.url, agent._api_key, agent._token) == ("http://elsewhere:8080", "k", None)
    monkeypatch.delenv("AIOP_API_KEY")
    assert Agent("a")._token == "t"


async def test_an_agent_without_what_it_needs_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIOP_URL", "AIOP_API_KEY", "AIOP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    agent = Agent("a")
    with pytest.raises(ValueError, match="offers nothing"):
        await agent.serve()
    agent.capability("x")(forever)
    with pytest.raises(ValueError, match="AIOP_URL"):
        await agent.serve()
    with pytest.raises(ValueError, match="twice"):
        agent.capability("x")(forever)
    with pytest.raises(ValueError, match="letters, digits"):
        agent.capability("a.b")
    with pytest.raises(ValueError, match="concurrency"):
        Agent("a", concurrency=0)
