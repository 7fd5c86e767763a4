"""The finished-workflow fast path answers only what the full app would answer the same."""

import time

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import Receive, Scope, Send

from aiop.gateway.adapters.ratelimits import RateLimits
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway
from aiop.gateway.fastpath import FinishedStatusFastPath
from aiop.servicekit import Service, ServiceSettings

BODY = b'{"workflow_id":"wf1","state":"succeeded"}'
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FullApp:
    """Stands in for the FastAPI app behind the fast path, counting what reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def setup() -> tuple[httpx.AsyncClient, FullApp, InMemorySpanExporter]:
    never_connected = ServiceSettings(nats_url="nats://127.0.0.1:1")
    gw = Gateway(Service("gateway-test", never_connected), max_body_bytes=1024)
    gw.finished.keep("wf1", "default", BODY)
    gw.finished.keep("wf2", "secret", BODY)
    soon = int(time.time()) + 600
    gw.verifier._verified["good"] = Claims(sub="me", projects=["default"], exp=soon)
    gw.verifier._verified["expired"] = Claims(sub="me", projects=["default"], exp=1)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    full = FullApp()
    app = FinishedStatusFastPath(full, gw, provider.get_tracer("test"))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return client, full, spans


async def test_a_finished_workflow_is_answered_with_a_server_span(setup) -> None:  # type: ignore[no-untyped-def]
    client, full, spans = setup
    headers = {"Authorization": "Bearer good", "traceparent": TRACEPARENT}
    reply = await client.get("/v1/workflows/wf1", headers=headers)
    assert (reply.status_code, reply.content) == (200, BODY)
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(BODY))
    assert full.paths == []
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /v1/workflows/{workflow_id}"
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == TRACEPARENT.split("-")[1]  # continues the caller's


@pytest.mark.parametrize(
    ("method", "path", "authorization"),
    [
        ("GET", "/v1/workflows/wf1", None),  # no token: the full app's 401
        ("GET", "/v1/workflows/wf1", "Basic good"),
        ("GET", "/v1/workflows/wf1", "Bearer unknown"),  # not verified yet: verify first
        ("GET", "/v1/workflows/wf1", "Bearer expired"),
        ("GET", "/v1/workflows/wf2", "Bearer good"),  # another project's: the full app's 404
        ("GET", "/v1/workflows/wf3", "Bearer good"),  # not finished: ask the services
        ("GET", "/v1/workflows/wf1/report", "Bearer good"),
        ("DELETE", "/v1/workflows/wf1", "Bearer good"),
    ],
)
async def test_anything_else_goes_to_the_full_app(setup, method, path, authorization) -> None:  # type: ignore[no-untyped-def]
    client, full, spans = setup
    headers = {"Authorization": authorization} if authorization else {}
    reply = await client.request(method, path, headers=headers)
    assert reply.status_code == 599
    assert full.paths == [path]
    assert spans.get_finished_spans() == ()


async def test_a_principal_past_its_limit_is_left_to_the_full_app(setup) -> None:  # type: ignore[no-untyped-def]
    client, full, _ = setup
    app = client._transport.app  # type: ignore[attr-defined]
    app.gw.limits = RateLimits("2/minute", "", "")
    headers = {"Authorization": "Bearer good"}
    statuses = [
        (await client.get("/v1/workflows/wf1", headers=headers)).status_code for _ in range(3)
    ]
    # The full app gives the 429 its problem details (here the stand-in's 599).
    assert statuses == [200, 200, 599]
    assert full.paths == ["/v1/workflows/wf1"]
