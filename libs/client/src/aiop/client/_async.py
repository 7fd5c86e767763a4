"""The asynchronous client: sends what ``Api`` builds over an ``httpx.AsyncClient``."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import EventSource

from aiop.client._api import Api
from aiop.client._core import Call, RetryPolicy, raise_for

T = TypeVar("T")


class AsyncClient(Api):
    """``AsyncClient(url, api_key=...)`` or ``AsyncClient(url, token=...)``; an async
    context manager. Every API method is a coroutine."""

    is_async = True

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(base_url, api_key=api_key, token=token, headers=headers, retry=retry,
                         timeout=timeout)  # fmt: skip
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)
        self.sleep = sleep
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, c: Call[T]) -> T:
        """Send ``c`` (retrying as the policy says) and read its answer."""
        response = await self.send(c)
        try:
            await response.aread()
            return self.result(c, response)
        finally:
            await response.aclose()

    async def _renew(self) -> None:
        async with self._token_lock:  # one exchange for concurrent calls
            if self.needs_token():
                self.keep_token(await self.run(self.token_call(self.api_key or "")))

    async def send(self, c: Call[Any]) -> httpx.Response:
        attempt, renewed = 0, False
        while True:
            if c.auth and self.needs_token():
                await self._renew()
            request = self.build(self.http, c)
            try:
                response = await self.http.send(request, stream=True)
            except httpx.TransportError:
                wait = self.transport_wait(c, attempt)
                if wait is None:
                    raise
            else:
                if response.status_code == 401 and c.auth and not renewed and self.drop_token():
                    await response.aclose()
                    renewed = True
                    continue
                wait = self.retry_wait(c, attempt, response)
                if wait is None:
                    return response
                await response.aclose()
            await self.sleep(wait)
            attempt += 1

    # -- what pages and streams --------------------------------------------------------

    async def iter_workflows(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every run the filters select, newest first, page after page."""
        async for item in self._pages(self.list_workflows, "workflows", filters):
            yield item

    async def iter_events(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every recorded event the filters select, newest first, page after page."""
        async for item in self._pages(self.list_events, "events", filters):
            yield item

    @staticmethod
    async def _pages(
        fetch: Callable[..., Awaitable[dict[str, Any]]], key: str, filters: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = filters.pop("cursor", None)
        while True:
            page = await fetch(**filters, cursor=cursor)
            for item in page[key]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def follow_logs(
        self, workflow_id: str, step: str | None = None, reconnect_delay: float = 0.5
    ) -> AsyncIterator[dict[str, Any]]:
        """Each log entry as it is stored (over SSE), then ``{"end": state}`` once the
        workflow ended. A dropped connection is resumed after the last entry received."""
        last = ""
        while True:
            c = self.follow_call(workflow_id, step, last)
            try:
                response = await self.send(c)
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for(response)
                    async for event in EventSource(response).aiter_sse():
                        if event.event == "end":
                            yield {"end": json.loads(event.data)["state"]}
                            return
                        last = event.id or last
                        yield dict(json.loads(event.data))
                finally:
                    await response.aclose()
            except httpx.TransportError:
                await self.sleep(reconnect_delay)
