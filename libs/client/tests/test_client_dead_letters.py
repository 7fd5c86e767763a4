"""The client's dead letters, paged through ``next``, and the live tail followed over SSE,
resumed after the last event id when the connection ends."""

import json
from typing import Any

import httpx

from aiop.client import AsyncClient, Client

URL = "http://gateway.test"


def tail_event(seq: int) -> bytes:
    data = {"stream": "AIOP", "seq": seq, "subject": f"aiop.step.started.v1.wf{seq}",
            "type": "aiop.step.started.v1", "time": "2026-01-01T00:00:00Z",
            "workflow_id": f"wf{seq}", "summary": "step s", "event": {}}  # fmt: skip
    return f"id: {seq}\nevent: aiop.step.started.v1\ndata: {json.dumps(data)}\n\n".encode()


def test_iter_dead_letters_follows_next_as_before() -> None:
    asked: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        if "before" not in request.url.params:
            return httpx.Response(200, json={"items": [{"seq": 9}, {"seq": 8}], "next": 8})
        return httpx.Response(200, json={"items": [{"seq": 3}], "next": None})

    with Client(URL, token="t", transport=httpx.MockTransport(handle)) as api:
        assert [i["seq"] for i in api.iter_dead_letters(limit=2)] == [9, 8, 3]
    assert asked == [{"limit": "2"}, {"limit": "2", "before": "8"}]


def test_replay_sends_the_fixed_payload() -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, json.loads(request.content)))
        return httpx.Response(202, json={"seq": 4, "subject": "ext.a", "replayed_at": "t",
                                         "msg_id": "m"})  # fmt: skip

    with Client(URL, token="t", transport=httpx.MockTransport(handle)) as api:
        assert api.replay_dead_letter(4, "{}", force=True)["subject"] == "ext.a"
        api.replay_dead_letter(4)
    assert sent == [("/v1/dead-letters/4/replay", {"force": True, "payload": "{}"}),
                    ("/v1/dead-letters/4/replay", {})]  # fmt: skip


async def test_follow_stream_resumes_after_the_last_id() -> None:
    resumed: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        resumed.append(request.headers.get("last-event-id"))
        assert request.url.params.get_list("subject") == ["aiop.step.>", "aiop.dlq.>"]
        first = int(request.headers.get("last-event-id", "0")) + 1
        body = b": keepalive\n\n" + tail_event(first) + tail_event(first + 1)
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    async with AsyncClient(URL, token="t", transport=httpx.MockTransport(handle)) as api:
        seen = []
        async for event in api.follow_stream(["aiop.step.>", "aiop.dlq.>"], since="5m"):
            seen.append(event["seq"])
            if len(seen) == 5:
                break
    assert seen == [1, 2, 3, 4, 5]
    assert resumed == [None, "2", "4"]
