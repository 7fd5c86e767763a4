"""The client against ``httpx.MockTransport``: retries and their bound, idempotency keys
kept across retries, pagination, problem details as exceptions, the token renewed."""

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from aiop.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)

URL = "http://gateway.test"
Handler = Callable[[httpx.Request], httpx.Response]


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def script(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving ``answers`` in turn (the last one again), and the requests seen."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        # A new response each time: one is bound to the client (sync or async) it went to.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return handle, seen


def client(handler: Handler, waits: list[float] | None = None, **kwargs: Any) -> Client:
    kwargs.setdefault("token", "tok")
    return Client(URL, transport=httpx.MockTransport(handler),
                  sleep=(waits if waits is not None else []).append, **kwargs)  # fmt: skip


ACCEPTED = httpx.Response(202, json={"workflow_id": "wf-1"})


def test_429_and_503_are_retried_honouring_retry_after() -> None:
    handler, seen = script(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"}),
        problem(503, "busy"),
        ACCEPTED,
    )  # fmt: skip
    waits: list[float] = []
    with client(handler, waits) as api:
        assert api.submit({"name": "x", "steps": []}) == "wf-1"
    assert len(seen) == 3
    assert waits[0] == 2.0  # Retry-After, in seconds
    assert 0 < waits[1] <= 1.0  # no Retry-After: the backoff (0.5 doubled, less jitter)
    assert all(r.headers["Authorization"] == "Bearer tok" for r in seen)


def test_retries_are_bounded_then_the_answer_is_an_exception() -> None:
    handler, seen = script(problem(503, "down for maintenance"))
    waits: list[float] = []
    with client(handler, waits, retry=RetryPolicy(attempts=3)) as api, \
            pytest.raises(Unavailable) as raised:  # fmt: skip
        api.status("wf-1")
    assert len(seen) == 3
    assert len(waits) == 2
    assert raised.value.status == 503
    assert raised.value.detail == "down for maintenance"


def test_retry_after_is_capped() -> None:
    handler, _ = script(
        httpx.Response(429, headers={"Retry-After": "3600"}, json={"detail": "later"}), ACCEPTED
    )
    waits: list[float] = []
    with client(handler, waits, retry=RetryPolicy(max_wait=5)) as api:
        api.status("wf-1")
    assert waits == [5]


def test_a_retried_submit_sends_the_same_idempotency_key() -> None:
    handler, seen = script(httpx.ConnectError("reset"), problem(503, "busy"), ACCEPTED)
    with client(handler) as api:
        assert api.submit({"name": "x"}) == "wf-1"
        api.submit({"name": "x"}, idempotency_key="mine")
    keys = [r.headers["Idempotency-Key"] for r in seen]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2]
    assert len(keys[0]) >= 16
    assert keys[3] == "mine"


def test_run_template_and_task_runs_send_an_idempotency_key() -> None:
    handler, seen = script(ACCEPTED)
    with client(handler) as api:
        api.run_template("ci-cd@1.0.0", {"a": 1}, project="p")
        api.run_task("p", "nightly")
    assert all("Idempotency-Key" in r.headers for r in seen)
    assert seen[0].url.params["project"] == "p"
    assert json.loads(seen[0].content) == {"parameters": {"a": 1}}


def test_a_post_without_a_key_is_not_resent_after_a_transport_error() -> None:
    handler, seen = script(httpx.ConnectError("reset"), ACCEPTED)
    with client(handler) as api, pytest.raises(httpx.ConnectError):
        api.rerun("wf-1")
    assert len(seen) == 1


def test_a_post_without_a_key_is_not_resent_after_a_503_but_is_after_a_429() -> None:
    handler, seen = script(problem(503, "busy"), ACCEPTED)
    with client(handler) as api, pytest.raises(Unavailable):
        api.rerun("wf-1")
    assert len(seen) == 1
    handler, seen = script(httpx.Response(429, headers={"Retry-After": "0"}, json={}), ACCEPTED)
    with client(handler) as api:
        assert api.rerun("wf-1", from_step="test") == "wf-1"
    assert len(seen) == 2


def test_a_read_is_resent_after_a_transport_error() -> None:
    handler, seen = script(
        httpx.ReadTimeout("slow"), httpx.Response(200, json={"state": "running"})
    )
    with client(handler) as api:
        assert api.status("wf-1")["state"] == "running"
    assert len(seen) == 2


def page_handler(
    pages: dict[str | None, dict[str, Any]], key: str
) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    return handle, seen


def test_iter_workflows_follows_next_cursor_with_the_filters() -> None:
    handler, seen = page_handler({
        None: {"workflows": [{"workflow_id": "a"}, {"workflow_id": "b"}], "next_cursor": "c1"},
        "c1": {"workflows": [{"workflow_id": "c"}], "next_cursor": "c2"},
        "c2": {"workflows": []},
    }, "workflows")  # fmt: skip
    with client(handler) as api:
        ids = [w["workflow_id"] for w in api.iter_workflows(state="failed", limit=2)]
    assert ids == ["a", "b", "c"]
    assert [r.url.params.get("cursor") for r in seen] == [None, "c1", "c2"]
    assert all(r.url.params["state"] == "failed" and r.url.params["limit"] == "2" for r in seen)


async def test_async_iter_events_follows_next_cursor() -> None:
    handler, seen = page_handler({
        None: {"project": "p", "events": [{"id": "1"}], "next_cursor": "9"},
        "9": {"project": "p", "events": [{"id": "2"}]},
    }, "events")  # fmt: skip

    async def no_wait(_: float) -> None:
        return None

    async with AsyncClient(URL, token="tok", transport=httpx.MockTransport(handler),
                           sleep=no_wait) as api:  # fmt: skip
        ids = [e["id"] async for e in api.iter_events(project="p")]
    assert ids == ["1", "2"]
    assert seen[1].url.params["project"] == "p"


@pytest.mark.parametrize(("status", "cls"), [
    (401, Unauthorized), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid),
    (429, RateLimited), (503, Unavailable), (418, ApiError),
])  # fmt: skip
def test_problem_details_become_typed_exceptions(status: int, cls: type[ApiError]) -> None:
    errors = [{"pointer": "/steps/0/run", "detail": "is required"}]
    handler, _ = script(problem(status, "no good", type="urn:aiop:problem:validation",
                                errors=errors))  # fmt: skip
    with client(handler, retry=RetryPolicy(attempts=1)) as api, pytest.raises(cls) as raised:
        api.template("nope")
    assert type(raised.value) is cls
    assert raised.value.status == status
    assert raised.value.kind == "validation"
    assert raised.value.errors == errors
    assert str(raised.value).startswith(f"{status}: no good\n  - ")


def test_an_error_without_problem_details_still_says_something() -> None:
    handler, _ = script(httpx.Response(502, text="bad gateway"))
    with client(handler) as api, pytest.raises(ApiError) as raised:
        api.keys()
    assert str(raised.value) == "502: bad gateway"


def token_reply(token: str, expires_in: float) -> httpx.Response:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    return httpx.Response(200, json={"token": token, "expires_at": expires.isoformat(),
                                     "principal": "me", "projects": ["default"]})  # fmt: skip


def test_an_api_key_is_exchanged_and_the_token_renewed_before_it_expires() -> None:
    issued = iter([token_reply("t1", 3600), token_reply("t2", 3600)])
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/tokens":
            assert "Authorization" not in request.headers
            assert json.loads(request.content) == {"api_key": "key"}
            return next(issued)
        return httpx.Response(200, json={"keys": []})

    with Client(URL, api_key="key", transport=httpx.MockTransport(handle)) as api:
        api.keys()
        api.keys()  # the token is still good: no exchange
        assert api.token_expires is not None
        api.token_expires -= 3590  # now within the renewal margin
        api.keys()
    assert [r.url.path for r in seen] == ["/v1/tokens", "/v1/keys", "/v1/keys", "/v1/tokens",
                                          "/v1/keys"]  # fmt: skip
    assert [r.headers.get("Authorization") for r in seen if r.url.path == "/v1/keys"] == [
        "Bearer t1", "Bearer t1", "Bearer t2"]  # fmt: skip


def test_a_rejected_token_is_renewed_once() -> None:
    issued = iter([token_reply("t1", 3600), token_reply("t2", 3600)])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/tokens":
            return next(issued)
        if request.headers["Authorization"] == "Bearer t1":
            return problem(401, "token revoked")
        return httpx.Response(200, json={"keys": [{"id": "k"}]})

    with Client(URL, api_key="key", transport=httpx.MockTransport(handle)) as api:
        assert api.keys() == [{"id": "k"}]


def test_a_given_token_that_is_refused_is_unauthorized() -> None:
    handler, seen = script(problem(401, "expired"))
    with client(handler) as api, pytest.raises(Unauthorized):
        api.keys()
    assert len(seen) == 1


def test_the_clients_headers_are_sent_and_none_params_are_dropped() -> None:
    handler, seen = script(httpx.Response(200, json={"templates": []}))
    with client(handler, headers={"AIOP-Origin": "cli"}) as api:
        assert api.templates() == []
    assert seen[0].headers["AIOP-Origin"] == "cli"
    assert "project" not in seen[0].url.params


def test_created_tells_new_from_unchanged() -> None:
    handler, _ = script(
        httpx.Response(201, json={"name": "s"}), httpx.Response(200, json={"name": "s"})
    )
    with client(handler) as api:
        assert api.set_secret("S", "v", project="p") == (True, {"name": "s"})
        assert api.set_secret("S", "v", project="p") == (False, {"name": "s"})


def sse(*events: tuple[str, str, dict[str, Any]]) -> httpx.Response:
    text = "".join(f"event: {name}\nid: {id_}\ndata: {json.dumps(data)}\n\n"
                   for name, id_, data in events)  # fmt: skip
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def test_follow_logs_resumes_after_the_last_entry() -> None:
    handler, seen = script(
        sse(("log", "1", {"line": "a"})),  # the connection ends without "end": resumed
        sse(("log", "2", {"line": "b"}), ("end", "", {"state": "succeeded"})),
    )
    with client(handler) as api:
        got = list(api.follow_logs("wf-1", step="s", reconnect_delay=0))
    assert got == [{"line": "a"}, {"line": "b"}, {"end": "succeeded"}]
    assert seen[1].headers["Last-Event-ID"] == "1"
    assert seen[0].url.params["follow"] == "true"
    assert seen[0].url.params["step"] == "s"
    # A followed stream may be quiet for long: no read timeout on it.
    assert seen[0].extensions["timeout"]["read"] is None


def test_follow_logs_of_an_unknown_step_is_not_found() -> None:
    handler, _ = script(problem(404, "workflow wf-1 has no step 'nope'"))
    with client(handler) as api, pytest.raises(NotFound):
        list(api.follow_logs("wf-1", step="nope"))


async def test_async_submit_retries_with_the_same_key() -> None:
    handler, seen = script(httpx.Response(429, headers={"Retry-After": "1"}, json={}), ACCEPTED)
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    async with AsyncClient(URL, token="tok", transport=httpx.MockTransport(handler),
                           sleep=sleep) as api:  # fmt: skip
        assert await api.submit({"name": "x"}) == "wf-1"
    assert waits == [1.0]
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]


async def test_async_problem_is_an_exception() -> None:
    handler, _ = script(problem(404, "no such workflow"))
    async with AsyncClient(URL, token="tok", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(NotFound) as raised:
            await api.status("nope")
    assert raised.value.detail == "no such workflow"


async def test_async_client_exchanges_its_api_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/tokens":
            return token_reply("t1", 3600)
        return httpx.Response(200, json={"projects": []})

    async with AsyncClient(URL, api_key="key", transport=httpx.MockTransport(handle)) as api:
        assert await api.projects() == []
    assert seen[-1].headers["Authorization"] == "Bearer t1"


def test_retry_after_as_an_http_date_counts_from_the_answers_date() -> None:
    sent = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    busy = httpx.Response(503, json={"detail": "busy"}, headers={
        "Retry-After": format_datetime(sent + timedelta(seconds=7), usegmt=True),
        "Date": format_datetime(sent, usegmt=True),
    })  # fmt: skip
    handler, _ = script(busy, httpx.Response(200, json={"keys": []}))
    waits: list[float] = []
    with client(handler, waits) as api:
        api.keys()
    assert waits == [7.0]


def test_retry_after_as_an_http_date_without_a_date_counts_from_now() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    past = "Thu, 01 Jan 1970 00:00:00 GMT"
    handler, _ = script(
        httpx.Response(429, headers={"Retry-After": later}, json={}),
        httpx.Response(429, headers={"Retry-After": past}, json={}),
        httpx.Response(429, headers={"Retry-After": "soon"}, json={}),
        httpx.Response(200, json={"keys": []}),
    )
    waits: list[float] = []
    with client(handler, waits, retry=RetryPolicy(max_wait=20)) as api:
        api.keys()
    assert waits[0] == 20  # about 30 s off, capped
    assert waits[1] == 0.0  # a date gone by: at once
    assert 0 < waits[2] <= 2.0  # unreadable: the backoff (0.5 doubled twice, less jitter)


def test_health_needs_no_token() -> None:
    handler, seen = script(httpx.Response(200, json={"status": "ok"}))
    with client(handler) as api:
        assert api.health() == {"status": "ok"}
    assert "Authorization" not in seen[0].headers


EVENTS_PATH = "/v1/workflows/wf-1/events"


def event(seq: int, kind: str) -> tuple[str, str, dict[str, Any]]:
    entry = {"seq": seq, "type": kind, "time": "2030-01-01T00:00:00Z",
             "event": {"workflow_id": "wf-1"}}  # fmt: skip
    return ("event", str(seq), entry)


def status_view(state: str) -> httpx.Response:
    return httpx.Response(200, json={"workflow_id": "wf-1", "state": state, "steps": []})


def test_follow_events_resumes_after_the_last_event() -> None:
    handler, seen = script(
        sse(event(3, "aiop.workflow.submitted.v1")),  # the connection drops: resumed
        sse(event(5, "aiop.workflow.completed.v1"), ("end", "", {"state": "succeeded"})),
    )
    with client(handler) as api:
        got = list(api.follow_events("wf-1", reconnect_delay=0))
    assert [item.get("type") for item in got] == [
        "aiop.workflow.submitted.v1", "aiop.workflow.completed.v1", None]  # fmt: skip
    assert got[-1] == {"end": "succeeded"}
    assert seen[0].url.path == EVENTS_PATH
    assert seen[0].headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in seen[0].headers
    assert seen[1].headers["Last-Event-ID"] == "3"


def routed(
    events: list[httpx.Response], statuses: list[httpx.Response]
) -> tuple[Handler, list[httpx.Request]]:
    """Answers for the events stream and for the status, each in turn (the last again)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answers = events if request.url.path == EVENTS_PATH else statuses
        count = sum(1 for r in seen if (r.url.path == EVENTS_PATH) == (answers is events))
        answer = answers[min(count, len(answers)) - 1]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return handle, seen


def test_wait_follows_the_events_then_reads_the_final_status() -> None:
    handler, seen = routed(
        [sse(event(1, "aiop.workflow.failed.v1"), ("end", "", {"state": "failed"}))],
        [status_view("running"), status_view("failed")],  # the end is recorded a moment later
    )
    waits: list[float] = []
    with client(handler, waits) as api:
        view = api.wait("wf-1", timeout=30, poll=1.0)
    assert view["state"] == "failed"
    assert [r.url.path for r in seen] == [EVENTS_PATH, "/v1/workflows/wf-1", "/v1/workflows/wf-1"]
    assert waits == [0.05]
    # With a timeout, a quiet stream is looked at no later than ``poll``.
    assert 0 < seen[0].extensions["timeout"]["read"] <= 1.0


def test_wait_times_out_on_a_quiet_stream() -> None:
    handler, _ = routed([], [status_view("running")])

    def quiet(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENTS_PATH:
            raise httpx.ReadTimeout("nothing to read", request=request)
        return handler(request)

    with client(quiet) as api, pytest.raises(TimeoutError, match="wf-1 did not end within 0"):
        api.wait("wf-1", timeout=0)


def test_wait_asks_for_the_status_of_a_gateway_without_an_events_stream() -> None:
    handler, seen = routed(
        [problem(404, "Not Found")],
        [status_view("queued"), status_view("running"), status_view("running"),
         status_view("succeeded")],
    )  # fmt: skip
    waits: list[float] = []
    with client(handler, waits) as api:
        assert api.wait("wf-1", poll=0.08)["state"] == "succeeded"
    assert len(seen) == 5  # the stream, the status that says the run is there, then three
    assert waits == [0.05, 0.08]  # doubling, up to ``poll``


def test_wait_for_an_unknown_workflow_is_not_found() -> None:
    handler, _ = script(problem(404, "no workflow wf-1"))
    with client(handler) as api, pytest.raises(NotFound):
        api.wait("wf-1")


async def test_async_wait_follows_the_events_to_the_end() -> None:
    handler, seen = routed(
        [sse(event(1, "aiop.step.started.v1"), event(2, "aiop.workflow.cancelled.v1"),
             ("end", "", {"state": "cancelled"}))],
        [status_view("cancelled")],
    )  # fmt: skip
    async with AsyncClient(URL, token="tok", transport=httpx.MockTransport(handler)) as api:
        followed = [item async for item in api.follow_events("wf-1")]
        view = await api.wait("wf-1", timeout=30)
    assert view["state"] == "cancelled"
    assert followed[-1] == {"end": "cancelled"}
    assert len(followed) == 3
    assert [r.url.path for r in seen][-1] == "/v1/workflows/wf-1"


async def test_async_wait_times_out_while_the_gateway_says_nothing() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # a gateway that never answers
        raise AssertionError("unreachable")

    async with AsyncClient(URL, token="tok", transport=httpx.MockTransport(never)) as api:
        with pytest.raises(TimeoutError, match=r"wf-1 did not end within 0\.05 s"):
            await api.wait("wf-1", timeout=0.05)
