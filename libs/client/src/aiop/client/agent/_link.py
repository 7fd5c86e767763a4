"""An agent's link to the gateway: its registration and agent token, and each call it
makes on the agent routes, retried through the gateway's bad moments."""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

import httpx

from aiop.client._async import AsyncClient
from aiop.client._core import RetryPolicy, epoch
from aiop.client.errors import ApiError, error_for

log = logging.getLogger("aiop.client.agent")

# Answers that say "not now" rather than "no": a restarting gateway, a full rate limit.
TRANSIENT = frozenset({429, 500, 502, 503, 504})
POLL_MARGIN_S = 10.0  # a long poll's read timeout: its wait and this much
RENEW_FLOOR_S = 1.0  # never renew more often, whatever the clocks say


class LeaseLost(Exception):
    """The lease is gone (409 ``lease-lost``, or unknown): another agent holds the step,
    or it was withdrawn; whatever this agent still says about it is refused."""


@dataclass(frozen=True)
class Registration:
    """What ``POST /v1/agents`` answered; the token is replaced on each renewal."""

    agent_id: str
    token: str
    renew_at: float  # time.monotonic() when the token is renewed: at 2/3 of its life
    expires: float  # time.monotonic() when the token stops being accepted
    lease_ttl_s: float
    heartbeat_s: float
    poll_wait_s: float

    def with_token(self, reply: Mapping[str, Any]) -> "Registration":
        renew_at, expires = _token_times(reply)
        return replace(self, token=str(reply["token"]), renew_at=renew_at, expires=expires)

    @classmethod
    def of(cls, reply: Mapping[str, Any]) -> "Registration":
        renew_at, expires = _token_times(reply)
        return cls(
            agent_id=str(reply["agent_id"]),
            token=str(reply["token"]),
            renew_at=renew_at,
            expires=expires,
            lease_ttl_s=float(reply["lease_ttl_s"]),
            heartbeat_s=float(reply["heartbeat_s"]),
            poll_wait_s=float(reply["poll_wait_s"]),
        )


def _token_times(reply: Mapping[str, Any]) -> tuple[float, float]:
    # expires_at is the gateway's wall clock; turned into a monotonic deadline at once,
    # so a clock changed later does not move it.
    left = epoch(str(reply["expires_at"])) - time.time()
    now = time.monotonic()
    return now + max(left * 2 / 3, RENEW_FLOOR_S), now + left


class Link:
    """Registration, token renewal and the agent routes over one ``httpx.AsyncClient``.

    ``profile`` is the registration body (name, project, capabilities, concurrency)."""

    def __init__(
        self,
        url: str,
        profile: Mapping[str, Any],
        *,
        api_key: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # The user's client exchanges the API key and registers; its connection pool is
        # shared by the agent routes, which carry the agent token instead.
        self.user = AsyncClient(url, api_key=api_key, token=token, retry=retry,
                                timeout=timeout, transport=transport, sleep=sleep)  # fmt: skip
        self.http = self.user.http
        self.profile = dict(profile)
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._registration: Registration | None = None
        self._refreshing = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.user.aclose()

    @property
    def registration(self) -> Registration:
        if self._registration is None:
            raise RuntimeError("the agent is not registered")
        return self._registration

    # -- registration and the agent token ------------------------------------------------

    async def register(self) -> Registration:
        """Register (again), retrying while the gateway is unreachable or busy. A refusal
        (a bad API key, a project it may not use) is raised: waiting will not help."""
        attempt = 0
        while True:
            try:
                reply = await self.user.request("POST", "/v1/agents", json=self.profile)
                break
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in TRANSIENT:
                    raise
                wait = self.retry.wait(attempt, None)
                log.warning("cannot register yet (%s); again in %.1fs", exc, wait)
                await self.sleep(wait)
                attempt += 1
        self._registration = Registration.of(reply)
        log.info("registered as agent %s", self._registration.agent_id)
        return self._registration

    async def refresh(self, refused: str | None = None) -> None:
        """Renew the agent token, or register again if the gateway no longer knows this
        agent or its token. ``refused``: the token a 401 answered; if it was replaced
        meanwhile (another call refreshed it), there is nothing to do."""
        async with self._refreshing:
            current = self.registration
            if refused is not None and current.token != refused:
                return
            try:
                reply = await self.send("POST", "/token", reauth=False, until=current.expires)
            except (httpx.TransportError, ApiError) as exc:
                # 401 or 404: the gateway forgot this agent or its token; transient errors
                # until the token expired: it cannot be renewed any more. Either way, anew.
                if isinstance(exc, ApiError) and exc.status not in (401, 404, *TRANSIENT):
                    raise
                log.warning("agent token not renewed (%s): registering again", exc)
                await self.register()
                return
            self._registration = current.with_token(reply)

    async def deregister(self, within: float = 5.0) -> None:
        """Best effort: a gateway that does not hear it forgets the agent by itself."""
        try:
            await self.send("DELETE", "", reauth=False, until=time.monotonic() + within)
        except (httpx.TransportError, ApiError) as exc:
            log.warning("could not deregister agent %s: %s", self.registration.agent_id, exc)

    # -- work and reports -----------------------------------------------------------------

    async def take(self, free: int) -> list[dict[str, Any]]:
        """Wait (long poll) for at most ``free`` leases; retried until it is answered."""
        wait = self.registration.poll_wait_s
        # Sent as the gateway gave it: a whole number of seconds stays one ("20", not "20.0").
        asked = int(wait) if wait.is_integer() else wait
        reply = await self.send("POST", "/work", params={"wait": asked, "max": free},
                                timeout=wait + POLL_MARGIN_S)  # fmt: skip
        return list((reply or {}).get("leases") or [])

    async def report(self, lease_id: str, kind: str, body: Any, until: float) -> dict[str, Any]:
        """``kind`` (heartbeat, progress, logs, result, failure) on a lease, retried until
        ``until``; LeaseLost if the gateway says the lease is not this agent's any more."""
        try:
            reply = await self.send("POST", f"/leases/{lease_id}/{kind}", json=body, until=until)
        except ApiError as exc:
            # 409 lease-lost; 404 an unknown lease, or a lease of this agent's previous
            # registration: in every case the step is not this agent's to report on.
            if exc.status in (404, 409):
                raise LeaseLost(exc.detail) from exc
            raise
        return dict(reply or {})

    # -- one call ---------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        route: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        until: float = math.inf,
        reauth: bool = True,
    ) -> Any:
        """``method`` on ``/v1/agents/{id}{route}`` with the agent token; a 401 refreshes the
        token once. Transport errors and transient answers are retried with backoff until
        ``until`` (time.monotonic()); the last one is raised then."""
        attempt, refreshed = 0, not reauth
        while True:
            registration = self.registration
            request = self.http.build_request(
                method, f"/v1/agents/{registration.agent_id}{route}", json=json, params=params,
                headers={"Authorization": f"Bearer {registration.token}"},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )  # fmt: skip
            try:
                response = await self.http.send(request)
            except httpx.TransportError:
                wait = self.retry.wait(attempt, None)
                if time.monotonic() + wait > until:
                    raise
            else:
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    await self.refresh(refused=registration.token)
                    continue
                if response.status_code not in TRANSIENT:
                    if response.status_code >= 400:
                        raise error_for(response)
                    return response.json() if response.content else None
                wait = self.retry.wait(attempt, response)
                if time.monotonic() + wait > until:
                    raise error_for(response)
            await self.sleep(wait)
            attempt += 1
