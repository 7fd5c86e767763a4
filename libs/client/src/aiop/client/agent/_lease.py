"""One lease, from its handler's start to the report that ends it: heartbeats and the
handler's reports while it runs, then its result or failure, once."""

import asyncio
import concurrent.futures.thread
import contextvars
import functools
import inspect
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Literal

import httpx

from aiop.client.agent._context import Context, Outbox, StepFailure
from aiop.client.agent._link import LeaseLost, Link
from aiop.client.errors import ApiError

log = logging.getLogger("aiop.client.agent")

Handler = Callable[[dict[str, Any], Context], Any]
Outcome = tuple[Literal["result", "failure"], dict[str, Any]]

MAX_OUTPUT_BYTES = 64 * 1024  # the bound on any step's summary
MAX_ERROR_CHARS = 16 * 1024  # the gateway's bound on a failure's error text
REPORT_GAP_S = 0.25  # a handler reporting in a tight loop is heard this often at most
REFUSED = frozenset({400, 413, 422})  # a report whose body the gateway will never take


class Withdrawn(Exception):
    """A heartbeat answered ``cancelled: true``: the step was cancelled or timed out."""


class LeaseRun:
    def __init__(self, link: Link, lease: dict[str, Any], handler: Handler | None,
                 threads: Executor) -> None:  # fmt: skip
        self.link = link
        self.id = str(lease["lease_id"])
        self.input = dict(lease.get("input") or {})
        self.handler = handler
        self.threads = threads
        self.outbox = Outbox(asyncio.get_running_loop())
        self.cancelled = threading.Event()
        self.ctx = Context(lease, self.outbox, self.cancelled)
        self.ttl = float(lease.get("lease_ttl_s") or link.registration.lease_ttl_s)
        self.expires = time.monotonic() + self.ttl  # moved on by every answer on the lease
        self.interval = min(link.registration.heartbeat_s, self.ttl / 2)
        self.gap = min(REPORT_GAP_S, self.interval)
        self.last_report = time.monotonic()
        self.dropped: str | None = None  # why nothing more is said on this lease

    def __str__(self) -> str:
        c = self.ctx
        return f"{c.workflow_id}/{c.step} try {c.try_number} (lease {self.id})"

    async def run(self) -> None:
        work = asyncio.create_task(self._work())
        done = asyncio.Event()
        reporter = asyncio.create_task(self._keep(work, done))
        try:
            outcome = await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.dropped is None or (task is not None and task.cancelling()):
                # The agent stops without waiting for the handler: a handler in a thread
                # can only see it in ctx.cancelled.
                self.cancelled.set()
                reporter.cancel()
                raise
            log.info("%s: dropped, %s", self, self.dropped)
            return
        finally:
            done.set()
            await asyncio.wait({reporter})  # a report under way is let finish
        if self.dropped is None:
            await self._finish(*outcome)

    # -- the handler --------------------------------------------------------------------

    async def _work(self) -> Outcome:
        try:
            if self.handler is None:
                raise StepFailure(f"this agent offers no capability {self.ctx.capability!r}")
            if inspect.iscoroutinefunction(self.handler):
                value = await self.handler(self.input, self.ctx)
            else:
                call = functools.partial(self.handler, self.input, self.ctx)
                run = functools.partial(contextvars.copy_context().run, call)
                value = await asyncio.get_running_loop().run_in_executor(self.threads, run)
            if inspect.isawaitable(value):  # a plain function that returned a coroutine
                value = await value
            return "result", {"output": as_output(value)}
        except StepFailure as exc:
            return "failure", {"error": error_text(str(exc))}
        except Exception as exc:
            self.ctx.log(handler_traceback(exc), "stderr")
            return "failure", {"error": error_text(f"{type(exc).__name__}: {exc}")}

    # -- while it runs ------------------------------------------------------------------

    async def _keep(self, work: "asyncio.Task[Outcome]", done: asyncio.Event) -> None:
        """Keep the lease while the handler runs: a heartbeat when one is due, progress
        and log lines as they come. Cancel the handler if the gateway says stop, or the
        lease is lost."""
        while await self._next_turn(done):
            try:
                if not await self._flush():
                    await self._say("heartbeat", {})
            except Withdrawn:
                self._drop(work, "the step was cancelled or timed out")
                return
            except LeaseLost as exc:
                self._drop(work, f"the lease was lost ({exc})")
                return
            except (httpx.TransportError, ApiError) as exc:
                self._drop(work, f"the gateway did not take its reports ({exc})")
                return

    async def _next_turn(self, done: asyncio.Event) -> bool:
        """Wait until a heartbeat is due, or reports wait (not sooner than ``gap`` after the
        last one). False: the handler is done."""
        if await _either(done, None, self.last_report + self.gap):
            return False
        return not await _either(done, self.outbox.ready, self.last_report + self.interval)

    async def _flush(self) -> bool:
        """Send the progress and log lines waiting; whether there were any."""
        self.outbox.ready.clear()
        progress, lines = self.outbox.take()
        if lines:
            await self._say("logs", {"lines": lines})
        if progress is not None:
            await self._say("progress", progress)
        return bool(lines) or progress is not None

    async def _say(self, kind: str, body: dict[str, Any]) -> None:
        try:
            answer = await self.link.report(self.id, kind, body, until=self.expires)
        except ApiError as exc:
            if exc.status not in REFUSED or kind == "heartbeat":
                raise
            log.warning("%s: %s report refused: %s", self, kind, exc)  # that report only
            return
        self.last_report = time.monotonic()
        self.expires = self.last_report + float(answer.get("lease_ttl_s") or self.ttl)
        if answer.get("cancelled"):
            raise Withdrawn

    def _drop(self, work: "asyncio.Task[Outcome]", why: str) -> None:
        self.dropped = why
        self.cancelled.set()
        work.cancel()

    # -- the end ------------------------------------------------------------------------

    async def _finish(self, kind: Literal["result", "failure"], body: dict[str, Any]) -> None:
        """The result or failure, retried until the gateway takes it, the lease is lost,
        or it would have run out anyway (then the step is offered again)."""
        try:
            await self._flush()  # the handler's last lines go before its result
            await self.link.report(self.id, kind, body, until=self.expires)
            log.info("%s: %s reported", self, kind)
        except Withdrawn:
            log.info("%s: cancelled before its %s was reported", self, kind)
        except LeaseLost as exc:
            log.warning("%s: lease lost, %s dropped (%s)", self, kind, exc)
        except ApiError as exc:
            if kind == "result" and exc.status in REFUSED:
                await self._finish("failure", {"error": f"output refused: {exc.detail}"})
            else:
                log.error("%s: %s not reported: %s", self, kind, exc)
        except httpx.TransportError as exc:
            log.error("%s: %s not reported before the lease ran out: %s", self, kind, exc)


async def _either(first: asyncio.Event, second: asyncio.Event | None, deadline: float) -> bool:
    """Wait for ``first`` or ``second`` until ``deadline`` (time.monotonic()); whether
    ``first`` is set."""
    waiters = {asyncio.create_task(e.wait()) for e in (first, second) if e is not None}
    try:
        await asyncio.wait(waiters, timeout=max(0.0, deadline - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    finally:
        for waiter in waiters:
            waiter.cancel()
    return first.is_set()


def handler_traceback(exc: BaseException) -> str:
    """The traceback from the handler's frames down: the agent's own (and the thread
    pool's) say nothing about what went wrong in the step."""
    shown = traceback.TracebackException.from_exception(exc)
    ours = {__file__, concurrent.futures.thread.__file__}
    shown.stack = traceback.StackSummary.from_list(
        [frame for frame in shown.stack if frame.filename not in ours]
    )
    return "".join(shown.format())


def error_text(error: str) -> str:
    """A failure's error as the gateway takes it: not empty, at most 16 KiB characters."""
    if not error.strip():
        return "the step failed (no error message)"
    if len(error) <= MAX_ERROR_CHARS:
        return error
    return error[: MAX_ERROR_CHARS - 20] + " [... cut short]"


def as_output(value: Any) -> dict[str, Any]:
    """A handler's return value as a step's output: a JSON object of at most 64 KiB. A
    dict is the output, None an empty one, any other JSON value ``{"result": value}``."""
    output = {} if value is None else value if isinstance(value, dict) else {"result": value}
    try:
        size = len(
            json.dumps(output, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()
        )
    except (TypeError, ValueError) as exc:
        raise StepFailure(f"the output is not JSON: {exc}") from exc
    if size > MAX_OUTPUT_BYTES:
        raise StepFailure(f"the output is {size} bytes of JSON; at most {MAX_OUTPUT_BYTES}")
    return output
