"""The synchronous client: sends what ``Api`` builds over an ``httpx.Client``."""

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import EventSource

from aiop.client._api import Api
from aiop.client._core import Call, RetryPolicy, raise_for

T = TypeVar("T")


class Client(Api):
    """``Client(url, api_key=...)`` or ``Client(url, token=...)``; a context manager."""

    is_async = False

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url, api_key=api_key, token=token, headers=headers, retry=retry,
                         timeout=timeout)  # fmt: skip
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, c: Call[T]) -> T:
        """Send ``c`` (retrying as the policy says) and read its answer."""
        response = self.send(c)
        try:
            response.read()
            return self.result(c, response)
        finally:
            response.close()

    def send(self, c: Call[Any]) -> httpx.Response:
        attempt, renewed = 0, False
        while True:
            if c.auth and self.needs_token():
                self.keep_token(self.run(self.token_call(self.api_key or "")))
            request = self.build(self.http, c)
            try:
                response = self.http.send(request, stream=True)
            except httpx.TransportError:
                wait = self.transport_wait(c, attempt)
                if wait is None:
                    raise
            else:
                if response.status_code == 401 and c.auth and not renewed and self.drop_token():
                    response.close()
                    renewed = True
                    continue
                wait = self.retry_wait(c, attempt, response)
                if wait is None:
                    return response
                response.close()
            self.sleep(wait)
            attempt += 1

    # -- what pages and streams --------------------------------------------------------

    def iter_workflows(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run the filters select, newest first, page after page."""
        yield from self._pages(self.list_workflows, "workflows", filters)

    def iter_events(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every recorded event the filters select, newest first, page after page."""
        yield from self._pages(self.list_events, "events", filters)

    @staticmethod
    def _pages(
        fetch: Callable[..., dict[str, Any]], key: str, filters: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        cursor = filters.pop("cursor", None)
        while True:
            page = fetch(**filters, cursor=cursor)
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def follow_logs(
        self, workflow_id: str, step: str | None = None, reconnect_delay: float = 0.5
    ) -> Iterator[dict[str, Any]]:
        """Each log entry as it is stored (over SSE), then ``{"end": state}`` once the
        workflow ended. A dropped connection is resumed after the last entry received."""
        last = ""
        while True:
            c = self.follow_call(workflow_id, step, last)
            try:
                response = self.send(c)
                try:
                    if response.status_code >= 400:
                        response.read()
                        raise_for(response)
                    for event in EventSource(response).iter_sse():
                        if event.event == "end":
                            yield {"end": json.loads(event.data)["state"]}
                            return
                        last = event.id or last
                        yield dict(json.loads(event.data))
                finally:
                    response.close()
            except httpx.TransportError:
                self.sleep(reconnect_delay)  # the gateway restarted or the network blinked
