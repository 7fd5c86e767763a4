"""Waiting for a state to be reached, for tests and start-up checks.

A state (a row, a report, a consumer's counters) has no notification to wait on, so it
is polled, briefly and with a deadline; an event should be awaited instead.
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.02


async def until(
    check: Callable[[], Awaitable[T] | T], timeout_s: float = 10.0, what: str = "the condition"
) -> T:
    """The first truthy result of ``check()`` (a coroutine function or a plain one);
    AssertionError naming ``what`` and the last result if none comes within
    ``timeout_s``. Exceptions from ``check`` propagate."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s; last: {result!r}")
        await asyncio.sleep(POLL_S)


def until_sync(check: Callable[[], T], timeout_s: float = 10.0, what: str = "the condition") -> T:
    """``until`` for synchronous checks (a CLI run, an HTTP client)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s; last: {result!r}")
        time.sleep(POLL_S)
