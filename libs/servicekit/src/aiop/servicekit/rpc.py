"""Request/reply between services with nats.micro, carrying the W3C trace context.

Every service also registers as micro service ``aiop-<name>``; ``aiop up`` treats an
answer to ``$SRV.PING.aiop-<name>`` as "ready".
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

log = logging.getLogger("aiop.rpc")
tracer = trace.get_tracer("aiop.rpc")

Handler = Callable[[bytes], Awaitable[bytes]]


class QueryFailed(Exception):
    """An endpoint's answer that something went wrong; ``code`` is HTTP-like."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


async def request(nc: Client, subject: str, payload: Any, timeout: float = 2.0) -> bytes:
    """Send ``payload`` (a msgspec-encodable value) and return the reply body.

    Raises QueryFailed for an error reply, and for no responder (code 503).
    """
    headers: dict[str, str] = {}
    with tracer.start_as_current_span(f"request {subject}", kind=SpanKind.CLIENT):
        propagate.inject(headers)
        try:
            reply = await nc.request(
                subject, msgspec.json.encode(payload), timeout=timeout, headers=headers
            )
        except Exception as exc:  # no responders, timeout, connection closed
            raise QueryFailed(503, f"{subject} did not answer: {type(exc).__name__}") from exc
    error = (reply.headers or {}).get("Nats-Service-Error")
    if error is not None:
        code = int((reply.headers or {}).get("Nats-Service-Error-Code", "500"))
        raise QueryFailed(code, error)
    return reply.data


def endpoint(name: str, handler: Handler) -> Callable[[Request], Awaitable[None]]:
    """Wrap ``handler`` as a micro endpoint: continue the caller's trace, map failures."""

    async def handle(req: Request) -> None:
        ctx = propagate.extract(req.headers or {})
        with tracer.start_as_current_span(f"handle {name}", context=ctx, kind=SpanKind.SERVER):
            try:
                await req.respond(await handler(req.data))
            except QueryFailed as exc:
                await req.respond_error(str(exc.code), exc.description)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await req.respond_error("400", f"bad request: {exc}")
            except Exception as exc:
                log.exception("endpoint %s failed", name)
                await req.respond_error("500", f"{type(exc).__name__}: {exc}")

    return handle


async def serve(
    nc: Client,
    service: str,
    endpoints: dict[str, tuple[str, Handler]] | None = None,
    version: str = "0.1.0",
) -> Service:
    """Register micro service ``aiop-<service>`` with ``endpoints`` {name: (subject, handler)}."""
    svc = await add_service(nc, name=f"aiop-{service}", version=version)
    for name, (subject, handler) in (endpoints or {}).items():
        await svc.add_endpoint(name=name, subject=subject, handler=endpoint(name, handler))
    return svc


async def wait_ready(nc: Client, service: str, timeout: float = 30.0) -> None:
    """Return once micro service ``aiop-<service>`` answers a ping; TimeoutError otherwise."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await nc.request(f"$SRV.PING.aiop-{service}", b"", timeout=0.25)
            return
        except Exception as exc:
            if loop.time() > deadline:
                raise TimeoutError(f"aiop-{service} not ready after {timeout}s") from exc
            # No responder answers at once; pace the retries instead of spinning.
            await asyncio.sleep(0.05)
