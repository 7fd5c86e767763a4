"""GETs of finished workflows, answered in front of the framework.

Clients poll ``GET /v1/workflows/{id}`` until the workflow finishes, and keep asking
after. Once finished, its answer is a stored body (``FinishedWorkflows``) and the caller
a token already verified (``TokenVerifier.cached``), so routing, dependency injection and
the ASGI tracing middleware would cost several times the answer itself
(docs/performance.md). This app answers exactly that case, with its own server span;
anything else (another path, an unknown or new token, another project's workflow, a
workflow still running) goes to the full app, which also gives every error its problem
details.
"""

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Receive, Scope, Send

from aiop.gateway.context import Gateway
from aiop.gateway.domain.bearer import bearer_token

PREFIX = "/v1/workflows/"
ROUTE = "/v1/workflows/{workflow_id}"
SPAN_NAME = f"GET {ROUTE}"
_JSON = (b"content-type", b"application/json")


class FinishedStatusFastPath:
    def __init__(self, app: ASGIApp, gw: Gateway, tracer: trace.Tracer) -> None:
        self.app = app
        self.gw = gw
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._stored_answer(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        carrier = {"traceparent": headers[b"traceparent"].decode("latin-1")} if (
            b"traceparent" in headers
        ) else {}  # fmt: skip
        attributes = {"http.request.method": "GET", "http.route": ROUTE, "url.path": scope["path"],
                      "http.response.status_code": 200}  # fmt: skip
        with self.tracer.start_as_current_span(
            SPAN_NAME, context=propagate.extract(carrier), kind=SpanKind.SERVER,
            attributes=attributes,
        ):  # fmt: skip
            await send({
                "type": "http.response.start", "status": 200,
                "headers": [_JSON, (b"content-length", str(len(body)).encode())],
            })  # fmt: skip
            await send({"type": "http.response.body", "body": body})

    def _stored_answer(self, scope: Scope) -> bytes | None:
        """The stored body, if this request is a GET the full app would answer with it."""
        path: str = scope["path"]
        if scope["method"] != "GET" or not path.startswith(PREFIX):
            return None
        found = self.gw.finished.get(path[len(PREFIX) :])  # ids with "/" are never stored
        if found is None:
            return None
        project, body = found
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = bearer_token(value.decode("latin-1"))
                claims = self.gw.verifier.cached(token) if token is not None else None
                if claims is None or claims.agent is not None or project not in claims.projects:
                    return None  # an agent's token too: the full app refuses it
                # Past its limit the full app answers, with the 429 problem.
                return body if self.gw.limits.hit("principal", claims.sub) is None else None
        return None
