"""What the sync and the async client share: the request a call makes, how its answer is
read, when it is retried and how long to wait, and the token an API key is exchanged for.
Neither does any I/O here; ``_sync`` and ``_async`` only send."""

import email.utils
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import httpx

from aiop.client.errors import ApiError, error_for
from aiop.client.types import TokenReply

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 503})
TOKEN_MARGIN_S = 60.0  # a token is renewed this long before it expires


def json_body(response: httpx.Response) -> Any:
    return response.json()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, whether it may be sent again, and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Sent again after a transport error (the server may have acted on it): true for
    # reads, PUT, DELETE, and any POST that carries an Idempotency-Key.
    idempotent: bool = False
    auth: bool = True  # POST /v1/tokens needs no bearer token
    stream: bool = False  # a long-lived answer (logs or events followed over SSE)
    read_timeout: float | None = None  # a stream's: how long it may stay quiet (None: ever)


def call(
    method: str,
    path: str,
    parse: Callable[[httpx.Response], T],
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool | None = None,
    auth: bool = True,
    stream: bool = False,
) -> Call[T]:
    cleaned = {k: v for k, v in (params or {}).items() if v is not None}
    return Call(
        method=method,
        path=path,
        parse=parse,
        params=cleaned or None,
        json=json,
        content=content,
        headers=dict(headers or {}),
        idempotent=method in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent,
        auth=auth,
        stream=stream,
    )


def keyed(method: str, path: str, parse: Callable[[httpx.Response], T], key: str | None,
          **kwargs: Any) -> Call[T]:  # fmt: skip
    """A call that starts something: it carries an Idempotency-Key (a new one unless
    given), the same on every retry, so retrying it never starts a second run."""
    headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key or uuid.uuid4().hex}
    return call(method, path, parse, headers=headers, idempotent=True, **kwargs)


@dataclass(frozen=True)
class RetryPolicy:
    """429 answers, and 503 answers and transport errors on calls that may be repeated
    (reads, PUT, DELETE, calls with an Idempotency-Key), are retried at most
    ``attempts - 1`` times; a ``Retry-After`` (seconds or an HTTP date) is honoured (at
    most ``max_wait``), otherwise the wait is ``backoff`` doubled each time, with jitter."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_wait: float = 60.0
    jitter: float = 0.2

    def wait(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = retry_after(response)
            if after is not None:
                return min(after, self.max_wait)
        base = min(self.backoff * 2.0**attempt, self.max_backoff)
        return base * (1 - self.jitter * random.random())


def retry_after(response: httpx.Response) -> float | None:
    """The seconds ``Retry-After`` asks for: delta-seconds, or an HTTP date (the gateway
    sends seconds; a proxy in front of it may send a date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    at = http_date(value)
    if at is None:
        return None  # unreadable: the backoff decides
    # Counted from the answer's own Date where it has one: the server's clock set both.
    sent = http_date(response.headers.get("date", ""))
    return max(0.0, at - (sent if sent is not None else time.time()))


def http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def not_ended(workflow_id: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"workflow {workflow_id} did not end within {timeout} s")


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Base:
    """The clients' shared state and decisions; subclasses send."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        token_projects: list[str] | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give an api_key or a token, not both")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.token = token
        self.token_expires: float | None = None  # unknown for a token given as is
        self.headers = dict(headers or {})
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.token_projects = token_projects  # what tokens from the API key are limited to

    # -- the token --------------------------------------------------------------------

    def token_call(self, api_key: str, projects: list[str] | None = None) -> Call[TokenReply]:
        body: dict[str, Any] = {"api_key": api_key}
        if projects:
            body["projects"] = projects
        return call("POST", "/v1/tokens", json_body, json=body, auth=False, idempotent=True)

    def needs_token(self) -> bool:
        """An API key and no token, or one about to expire."""
        if not self.api_key:
            return False
        if self.token is None or self.token_expires is None:
            return True
        return self.token_expires - TOKEN_MARGIN_S < time.time()

    def keep_token(self, reply: TokenReply) -> None:
        self.token = str(reply["token"])
        self.token_expires = epoch(str(reply["expires_at"]))

    def drop_token(self) -> bool:
        """After a 401: forget the token if a new one can be had (then retry once)."""
        if not self.api_key or self.token is None:
            return False
        self.token = None
        return True

    # -- requests and answers ---------------------------------------------------------

    def build(self, http: httpx.Client | httpx.AsyncClient, c: Call[Any]) -> httpx.Request:
        headers = {**self.headers, **c.headers}
        if c.auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout: Any = (
            httpx.Timeout(self.timeout, read=c.read_timeout) if c.stream
            else httpx.USE_CLIENT_DEFAULT
        )  # fmt: skip
        return http.build_request(c.method, c.path, params=c.params, json=c.json,
                                  content=c.content, headers=headers, timeout=timeout)  # fmt: skip

    def retry_wait(self, c: Call[Any], attempt: int, response: httpx.Response) -> float | None:
        """How long to wait before sending ``c`` again after this answer; None: don't."""
        if response.status_code not in RETRY_STATUSES or attempt + 1 >= self.retry.attempts:
            return None
        # A 429 comes from the rate limit, before anything was done. A 503 may come after
        # the gateway acted (an answer that timed out): sent again only when that is safe.
        if response.status_code == 503 and not c.idempotent:
            return None
        return self.retry.wait(attempt, response)

    def transport_wait(self, c: Call[Any], attempt: int) -> float | None:
        """How long to wait before sending ``c`` again after a transport error; None: don't."""
        if not c.idempotent or attempt + 1 >= self.retry.attempts:
            return None
        return self.retry.wait(attempt, None)

    @staticmethod
    def result(c: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise error_for(response)
        return c.parse(response)


def raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_for(response)


__all__ = ["ApiError", "Base", "Call", "RetryPolicy", "call", "keyed"]
