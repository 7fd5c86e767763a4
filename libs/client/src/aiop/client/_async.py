"""The asynchronous client: sends what ``Api`` builds over an ``httpx.AsyncClient``."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import EventSource

from aiop.client._api import Api
from aiop.client._core import Call, RetryPolicy, not_ended, raise_for
from aiop.client.errors import NotFound
from aiop.client.types import (
    TERMINAL_STATES,
    DeadLetter,
    Ended,
    EventRecord,
    LogEntry,
    TailEvent,
    WorkflowEventEntry,
    WorkflowListItem,
    WorkflowStatus,
)

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
        token_projects: list[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(base_url, api_key=api_key, token=token, headers=headers, retry=retry,
                         timeout=timeout, token_projects=token_projects)  # fmt: skip
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
                self.keep_token(
                    await self.run(self.token_call(self.api_key or "", self.token_projects))
                )

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

    async def iter_workflows(self, **filters: Any) -> AsyncIterator[WorkflowListItem]:
        """Every run the filters select, newest first, page after page."""
        async for item in self._pages(self.list_workflows, "workflows", filters):
            yield item

    async def iter_events(self, **filters: Any) -> AsyncIterator[EventRecord]:
        """Every recorded event the filters select, newest first, page after page."""
        async for item in self._pages(self.list_events, "events", filters):
            yield item

    async def iter_dead_letters(self, limit: int | None = None) -> AsyncIterator[DeadLetter]:
        """Every dead letter the caller sees, newest first, page after page."""
        before = None
        while True:
            page = await self.dead_letters(limit=limit, before=before)
            for item in page["items"]:
                yield item
            if (before := page["next"]) is None:
                return

    @staticmethod
    async def _pages(
        fetch: Callable[..., Awaitable[Mapping[str, Any]]], key: str, filters: dict[str, Any]
    ) -> AsyncIterator[Any]:
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
    ) -> AsyncIterator[LogEntry | Ended]:
        """Each log entry as it is stored (over SSE), then ``{"end": state}`` once the
        workflow ended. A dropped connection is resumed after the last entry received."""
        path = f"/v1/workflows/{workflow_id}/logs"
        async for item in self._follow(lambda last: self.follow_call(path, last, step=step),
                                       reconnect_delay):  # fmt: skip
            yield item

    async def follow_events(
        self, workflow_id: str, reconnect_delay: float = 0.5
    ) -> AsyncIterator[WorkflowEventEntry | Ended]:
        """Each of the workflow's events from its submission on, live (over SSE), then
        ``{"end": state}`` after the one that ended it. A dropped connection is resumed
        after the last event received."""
        path = f"/v1/workflows/{workflow_id}/events"
        async for item in self._follow(lambda last: self.follow_call(path, last),
                                       reconnect_delay):  # fmt: skip
            yield item

    async def follow_stream(
        self,
        subjects: list[str] | None = None,
        workflow: str | None = None,
        since: str | None = None,
        reconnect_delay: float = 0.5,
    ) -> AsyncIterator[TailEvent]:
        """The live tail (GET /v1/stream, over SSE): each event the caller may see as it
        is stored, from ``since`` if given, with ``aiop tail``'s subject patterns; until
        the caller stops. A dropped connection is resumed after the last event received."""
        async for item in self._follow(
            lambda last: self.stream_call(subjects, workflow, since, last), reconnect_delay
        ):
            yield item

    async def wait(
        self, workflow_id: str, timeout: float | None = None, poll: float = 2.0
    ) -> WorkflowStatus:
        """The workflow's status once it has ended (``types.TERMINAL_STATES``), its events
        followed to the end; TimeoutError if that takes more than ``timeout`` seconds.
        Against a gateway without the events stream the status is asked for, at most
        ``poll`` seconds apart."""
        try:
            async with asyncio.timeout(timeout):
                return await self._wait(workflow_id, poll)
        except TimeoutError as exc:
            raise not_ended(workflow_id, timeout) from exc

    async def _wait(self, workflow_id: str, poll: float) -> WorkflowStatus:
        try:
            async for item in self.follow_events(workflow_id, reconnect_delay=poll):
                if "end" in item:
                    break
        except NotFound:
            await self.status(workflow_id)  # an unknown workflow: NotFound; else an older gateway
        delay = 0.05  # task-manager records the end a moment after the event that said it
        while (view := await self.status(workflow_id))["state"] not in TERMINAL_STATES:
            await self.sleep(delay)
            delay = min(delay * 2, poll)
        return view

    async def _follow(
        self, make: Callable[[str], Call[None]], reconnect_delay: float
    ) -> AsyncIterator[Any]:
        """The items of an event stream, resumed after the last id when the connection
        drops, until its ``end``."""
        last = ""
        while True:
            try:
                response = await self.send(make(last))
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for(response)
                    async for event in EventSource(response).aiter_sse():
                        data = json.loads(event.data)
                        if event.event == "end":
                            yield {"end": data["state"]}
                            return
                        last = event.id or last
                        yield data
                finally:
                    await response.aclose()
            except httpx.TransportError:
                await self.sleep(reconnect_delay)  # the gateway restarted or the network blinked
