"""The synchronous client: sends what ``Api`` builds over an ``httpx.Client``."""

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
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
        token_projects: list[str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url, api_key=api_key, token=token, headers=headers, retry=retry,
                         timeout=timeout, token_projects=token_projects)  # fmt: skip
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
                self.keep_token(self.run(self.token_call(self.api_key or "", self.token_projects)))
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

    def iter_workflows(self, **filters: Any) -> Iterator[WorkflowListItem]:
        """Every run the filters select, newest first, page after page."""
        yield from self._pages(self.list_workflows, "workflows", filters)

    def iter_events(self, **filters: Any) -> Iterator[EventRecord]:
        """Every recorded event the filters select, newest first, page after page."""
        yield from self._pages(self.list_events, "events", filters)

    def iter_dead_letters(self, limit: int | None = None) -> Iterator[DeadLetter]:
        """Every dead letter the caller sees, newest first, page after page."""
        before = None
        while True:
            page = self.dead_letters(limit=limit, before=before)
            yield from page["items"]
            if (before := page["next"]) is None:
                return

    @staticmethod
    def _pages(
        fetch: Callable[..., Mapping[str, Any]], key: str, filters: dict[str, Any]
    ) -> Iterator[Any]:
        cursor = filters.pop("cursor", None)
        while True:
            page = fetch(**filters, cursor=cursor)
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def follow_logs(
        self, workflow_id: str, step: str | None = None, reconnect_delay: float = 0.5
    ) -> Iterator[LogEntry | Ended]:
        """Each log entry as it is stored (over SSE), then ``{"end": state}`` once the
        workflow ended. A dropped connection is resumed after the last entry received."""
        path = f"/v1/workflows/{workflow_id}/logs"
        yield from self._follow(lambda last: self.follow_call(path, last, step=step),
                                reconnect_delay)  # fmt: skip

    def follow_events(
        self, workflow_id: str, reconnect_delay: float = 0.5
    ) -> Iterator[WorkflowEventEntry | Ended]:
        """Each of the workflow's events from its submission on, live (over SSE), then
        ``{"end": state}`` after the one that ended it. A dropped connection is resumed
        after the last event received."""
        path = f"/v1/workflows/{workflow_id}/events"
        yield from self._follow(lambda last: self.follow_call(path, last), reconnect_delay)

    def follow_stream(
        self,
        subjects: list[str] | None = None,
        workflow: str | None = None,
        since: str | None = None,
        reconnect_delay: float = 0.5,
    ) -> Iterator[TailEvent]:
        """The live tail (GET /v1/stream, over SSE): each event the caller may see as it
        is stored, from ``since`` if given, with ``aiop tail``'s subject patterns; until
        the caller stops. A dropped connection is resumed after the last event received."""
        yield from self._follow(
            lambda last: self.stream_call(subjects, workflow, since, last), reconnect_delay
        )

    def wait(
        self, workflow_id: str, timeout: float | None = None, poll: float = 2.0
    ) -> WorkflowStatus:
        """The workflow's status once it has ended (``types.TERMINAL_STATES``), its events
        followed to the end; TimeoutError if that takes more than ``timeout`` seconds.
        A stream quiet for ``poll`` seconds is reopened to look at the clock (so the
        timeout is overrun by at most that); against a gateway without the events stream
        the status is asked for, at most ``poll`` seconds apart."""
        deadline = None if timeout is None else time.monotonic() + timeout
        path = f"/v1/workflows/{workflow_id}/events"
        follow = self._follow(lambda last: self.follow_call(path, last), reconnect_delay=poll,
                              deadline=deadline, quiet=poll)  # fmt: skip
        try:
            for item in follow:
                if "end" in item or (deadline is not None and time.monotonic() > deadline):
                    break
        except NotFound:
            self.status(workflow_id)  # an unknown workflow: NotFound; else an older gateway
        delay = 0.05  # task-manager records the end a moment after the event that said it
        while (view := self.status(workflow_id))["state"] not in TERMINAL_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise not_ended(workflow_id, timeout)
            self.sleep(delay)
            delay = min(delay * 2, poll)
        return view

    def _follow(
        self,
        make: Callable[[str], Call[None]],
        reconnect_delay: float,
        deadline: float | None = None,
        quiet: float = 2.0,
    ) -> Iterator[Any]:
        """The items of an event stream, resumed after the last id when the connection
        drops, until its ``end``. With a ``deadline``, a read waits at most ``quiet``
        seconds (then the stream is reopened), and none is made once it has passed."""
        last = ""
        while True:
            c = make(last)
            if deadline is not None:
                left = max(0.001, deadline - time.monotonic())
                c = dataclasses.replace(c, read_timeout=min(quiet, left))
            try:
                response = self.send(c)
                try:
                    if response.status_code >= 400:
                        response.read()
                        raise_for(response)
                    for event in EventSource(response).iter_sse():
                        data = json.loads(event.data)
                        if event.event == "end":
                            yield {"end": data["state"]}
                            return
                        last = event.id or last
                        yield data
                finally:
                    response.close()
            except httpx.TransportError as exc:
                if deadline is not None:
                    if time.monotonic() > deadline:
                        return
                    if isinstance(exc, httpx.ReadTimeout):
                        continue  # only quiet: the clock was looked at, read on
                self.sleep(reconnect_delay)  # the gateway restarted or the network blinked
