"""Ending background tasks when a service stops."""

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

RECANCEL_S = 0.5


async def cancel_and_wait(tasks: Iterable["asyncio.Task[Any]"]) -> None:
    """Cancel ``tasks`` and return once every one has ended.

    One cancel is not always enough on Python 3.11: its ``asyncio.wait_for``, which
    nats-py and asyncpg use for requests, drops a cancel that lands in the same loop turn
    as the reply it waits for. A loop around such a call then runs on, and a stop that
    awaits it never returns. So a task still running a moment later is cancelled again.
    What the tasks raised is dropped: they are being stopped.
    """
    stopping = list(tasks)
    pending = {task for task in stopping if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in stopping:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


async def finish(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` to its end even when the caller is cancelled meanwhile, then let
    the cancel go on. For short cleanups in ``finally`` blocks of streaming answers, which
    Starlette ends with a cancel delivered again at every await: otherwise the first await
    of the cleanup ends it, and what it should have released stays behind."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()
