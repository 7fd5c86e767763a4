"""What every route needs: the bus, the token check, the body limit, what is remembered."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from fastapi import Request
from nats.js.kv import KeyValue

from aiop.contracts.endpoints import JWKS, Endpoint
from aiop.gateway.adapters.ratelimits import RateLimits
from aiop.gateway.adapters.step_cache import StepCache
from aiop.gateway.adapters.tokens import AuthUnavailable, Claims, InvalidToken, TokenVerifier
from aiop.gateway.domain.bearer import bearer_token
from aiop.gateway.domain.finished import FinishedWorkflows
from aiop.gateway.domain.fleet import Fleet
from aiop.gateway.domain.grants import Grants
from aiop.gateway.domain.owners import WorkflowOwners
from aiop.gateway.domain.recent import RecentSubmissions
from aiop.gateway.domain.submission import MalformedBody, decode_json
from aiop.gateway.domain.tails import TailSlots
from aiop.gateway.guards import client_address, too_many
from aiop.gateway.problems import Problem, unauthorized
from aiop.servicekit import Service
from aiop.servicekit.rpc import QueryFailed

if TYPE_CHECKING:
    from aiop.gateway.agent_desk import AgentDesk

JSON = "application/json"


@dataclass
class Gateway:
    svc: Service  # the gateway's bus side: publishing submissions, asking other services
    max_body_bytes: int
    limits: RateLimits = field(default_factory=lambda: RateLimits("", "", ""))
    verifier: TokenVerifier = field(init=False)
    recent: RecentSubmissions = field(default_factory=RecentSubmissions)
    grants: Grants = field(default_factory=Grants)
    finished: FinishedWorkflows = field(default_factory=FinishedWorkflows)
    cancels: KeyValue | None = None  # KV aiop_cancels, opened when the bus side starts
    step_cache: StepCache | None = None  # the step cache, opened when the bus side starts
    secrets: KeyValue | None = None  # KV aiop_secrets, opened when the bus side starts
    templates: KeyValue | None = None  # KV aiop_templates, opened when the bus side starts
    # The executors' public key: the gateway seals secrets to it and can never open them.
    sealing_key: X25519PublicKey | None = None
    agents: "AgentDesk | None" = None  # agents' work and leases, opened when the bus side starts
    fleet: Fleet = field(default_factory=Fleet)  # the executors, from their heartbeats
    trace_dir: Path | None = None  # where the services' span files are, if anywhere
    owners: WorkflowOwners = field(default_factory=WorkflowOwners)  # workflow -> project
    dlq_replays: KeyValue | None = None  # KV aiop_dlq_replays, opened when the bus side starts
    tails: TailSlots = field(default_factory=TailSlots)  # GET /v1/stream tails open, per caller

    def __post_init__(self) -> None:
        self.verifier = TokenVerifier(lambda: self.svc.ask(JWKS, {}))


async def ask_service(
    gw: Gateway, endpoint: Endpoint[Any, Any], request: msgspec.Struct, service: str,
    kinds: Mapping[int, str],
) -> bytes:  # fmt: skip
    """``service``'s answer. A failure whose code ``kinds`` names is the caller's to fix,
    answered as the gateway's own problem of that kind; any other is ``upstream``'s."""
    try:
        return await gw.svc.ask(endpoint, request)
    except QueryFailed as exc:
        if exc.code in kinds:
            raise Problem(exc.code, exc.description, kind=kinds[exc.code]) from None
        raise upstream(exc, service) from exc


def upstream(exc: QueryFailed, what: str) -> Problem:
    """A failed query as the gateway's own answer: the caller cannot fix the other service."""
    if exc.code == 503:
        return Problem(503, f"{what} is unavailable: {exc.description}", kind="unavailable")
    return Problem(502, f"{what} failed: {exc.description}", kind="upstream")


def authenticated(gateway: Gateway, agents: bool = False) -> Callable[[Request], Awaitable[Claims]]:
    """A dependency giving the caller's verified claims, or raising a 401 problem. An
    agent's token is refused (403) unless ``agents``: it is good for the agent routes
    only, which check it names the agent (``agent_access``)."""

    async def claims(request: Request) -> Claims:
        header = request.headers.get("authorization")
        if not header:
            raise unauthorized("a bearer token is required", error="")
        token = bearer_token(header)
        try:
            if token is None:
                raise unauthorized("the Authorization header must be 'Bearer <token>'")
            claims = await gateway.verifier.verify(token)
        except (InvalidToken, Problem) as exc:
            # A failed token counts against its client address, as a missing one does.
            address = client_address(request.scope)
            if (exceeded := gateway.limits.hit("address", address)) is not None:
                raise Problem(
                    429, too_many(exceeded), kind="rate-limited", headers=exceeded.headers()
                ) from exc
            if isinstance(exc, Problem):
                raise
            raise unauthorized(f"invalid token: {exc}") from exc
        except AuthUnavailable as exc:
            raise Problem(503, f"cannot check tokens: {exc}", kind="unavailable") from exc
        if (exceeded := gateway.limits.hit("principal", claims.sub)) is not None:
            raise Problem(429, too_many(exceeded), kind="rate-limited", headers=exceeded.headers())
        if claims.agent is not None and not agents:
            raise Problem(403, "an agent's token is good for its agent routes only",
                          kind="forbidden")  # fmt: skip
        return claims

    return claims


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body, refusing another content type, and more than ``limit`` bytes
    whatever Content-Length claims."""
    kind = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    if kind != JSON and not kind.endswith("+json"):
        raise Problem(
            415, f"the body must be {JSON}, not {kind or 'unnamed'}", kind="unsupported-media",
            headers={"Accept-Post": JSON},
        )  # fmt: skip
    too_large = Problem(413, f"the body is larger than {limit} bytes", kind="too-large")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Problem(400, "Content-Length is not a number", kind="bad-request")
        if int(length) > limit:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def request_json(gw: Gateway, request: Request) -> Any:
    """The request's JSON body (``read_body``'s limits), or a 400 if it is not JSON."""
    try:
        return decode_json(await read_body(request, gw.max_body_bytes))
    except MalformedBody:
        raise Problem(400, "the body is not JSON", kind="malformed") from None
