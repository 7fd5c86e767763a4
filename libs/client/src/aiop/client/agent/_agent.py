"""``Agent``: the capabilities it offers, declared with a decorator, and the loop that
takes leases while it has free slots, until it is stopped."""

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from aiop.client._core import RetryPolicy
from aiop.client.agent._lease import Handler, LeaseRun
from aiop.client.agent._link import Link
from aiop.client.errors import NotFound

log = logging.getLogger("aiop.client.agent")

H = TypeVar("H", bound=Handler)

MAX_CONCURRENCY = 256  # the gateway's bound on one agent's leases
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # a capability is a subject token


class Agent:
    """An agent serving one project: ``Agent("summarizer", concurrency=4)``.

    ``url`` defaults to ``$AIOP_URL``; the credentials to ``api_key`` or ``$AIOP_API_KEY``
    (exchanged for a token, and again whenever the agent must register anew), else
    ``token`` or ``$AIOP_TOKEN`` (used as is: fine for a session, not for a service).
    Steps still running when it is stopped get ``grace`` seconds to finish."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int = 4,
        url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        project: str = "default",
        grace: float = 30.0,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}, not {concurrency}")
        if api_key is None and token is None:
            api_key = os.environ.get("AIOP_API_KEY") or None
            token = None if api_key else os.environ.get("AIOP_TOKEN") or None
        self.name = name
        self.project = project
        self.concurrency = concurrency
        self.url = url or os.environ.get("AIOP_URL") or None
        self.grace = grace
        self.handlers: dict[str, Handler] = {}
        self._api_key, self._token = api_key, token
        self._retry = retry
        self._timeout = timeout
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        # Made before any loop runs: an event binds to the loop that first waits on it.
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()  # stopped twice: don't wait for the steps

    def capability(self, name: str) -> Callable[[H], H]:
        """Declare ``handler(input, ctx)`` (async, or a plain function run in a thread) as
        what takes the steps of ``agent: <name>``."""
        if not _TOKEN.match(name):
            raise ValueError(f"capability {name!r} must be 1-128 letters, digits, '-' or '_'")
        if name in self.handlers:
            raise ValueError(f"capability {name!r} is declared twice")

        def declare(handler: H) -> H:
            self.handlers[name] = handler
            return handler

        return declare

    # -- stopping -----------------------------------------------------------------------

    def stop(self) -> None:
        """Take no more work; let the steps under way finish (within ``grace``), then
        deregister. A second call cancels the steps at once. Safe from any thread."""
        if self._loop is None:
            self._stop_here()  # not serving yet: serve() will return at once
        else:
            self._loop.call_soon_threadsafe(self._stop_here)

    def _stop_here(self) -> None:
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (which stop it as ``stop`` does)."""
        asyncio.run(self._serve_until_signalled())

    async def _serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
            except NotImplementedError:  # Windows: a plain handler wakes the loop as well
                signal.signal(sig, lambda *_: self.stop())
        try:
            await self.serve()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # -- serving ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Register, take and run steps until stopped, then deregister."""
        if not self.handlers:
            raise ValueError("the agent offers nothing: declare @agent.capability(name)")
        if not self.url:
            raise ValueError("no gateway: give url= or set AIOP_URL")
        if not (self._api_key or self._token):
            raise ValueError("no credentials: give api_key= or set AIOP_API_KEY (or AIOP_TOKEN)")
        self._loop = asyncio.get_running_loop()
        profile = {"name": self.name, "project": self.project,
                   "capabilities": sorted(self.handlers), "concurrency": self.concurrency}  # fmt: skip
        threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"agent-{self.name}")
        leases: set[asyncio.Task[None]] = set()
        try:
            async with Link(self.url, profile, api_key=self._api_key, token=self._token,
                            retry=self._retry, timeout=self._timeout,
                            transport=self._transport) as link:  # fmt: skip
                if await self._unless_stopping(link.register()) is None:
                    return
                renewer = asyncio.create_task(self._renew(link))
                try:
                    await self._take_work(link, leases, threads, renewer)
                    await self._drain(leases)
                finally:
                    renewer.cancel()
                    for lease in leases:
                        lease.cancel()
                    await asyncio.gather(renewer, *leases, return_exceptions=True)
                    await link.deregister()
        finally:
            threads.shutdown(wait=False, cancel_futures=True)
            self._loop = None
            self._stopping, self._hurry = asyncio.Event(), asyncio.Event()

    async def _take_work(
        self,
        link: Link,
        leases: set["asyncio.Task[None]"],
        threads: ThreadPoolExecutor,
        renewer: "asyncio.Task[None]",
    ) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(leases)
                if free <= 0:  # poll only with a free slot: wait for a step to end
                    await asyncio.wait({stopping, renewer, *leases},
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                else:
                    poll = asyncio.create_task(link.take(free))
                    await asyncio.wait({poll, stopping, renewer},
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    if not poll.done():
                        # Stopping: what the gateway took for this poll it keeps for the
                        # next one, or lets run out; either way another agent gets it.
                        poll.cancel()
                    await asyncio.wait({poll})
                    if not poll.cancelled():
                        await self._start(link, poll, free, leases, threads)
                if renewer.done():
                    renewer.result()  # a renewal that cannot succeed: the agent stops
        finally:
            stopping.cancel()

    async def _start(
        self,
        link: Link,
        poll: "asyncio.Task[list[dict[str, Any]]]",
        free: int,
        leases: set["asyncio.Task[None]"],
        threads: ThreadPoolExecutor,
    ) -> None:
        try:
            taken = poll.result()
        except NotFound:  # the gateway forgot this agent (it was away too long)
            await self._unless_stopping(link.register())
            return
        for lease in taken[free:]:
            log.warning("lease %s beyond the %d asked for: left to run out", lease, free)
        for lease in taken[:free]:
            try:
                run = LeaseRun(link, lease, self.handlers.get(lease["capability"]), threads)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("a lease this agent cannot read (%r): %s", exc, lease)
                continue
            task = asyncio.create_task(run.run(), name=str(run))
            leases.add(task)
            task.add_done_callback(_ended(leases))

    async def _renew(self, link: Link) -> None:
        """Renew the agent token at 2/3 of its life (register again if it cannot be)."""
        while True:
            await asyncio.sleep(max(0.0, link.registration.renew_at - time.monotonic()))
            await link.refresh()

    async def _drain(self, leases: set["asyncio.Task[None]"]) -> None:
        if not leases:
            return
        log.info("stopping: %d steps get %.0fs to finish", len(leases), self.grace)
        finished = asyncio.create_task(asyncio.wait(set(leases)))
        hurry = asyncio.create_task(self._hurry.wait())
        await asyncio.wait({finished, hurry}, timeout=self.grace,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finished.cancel()
        hurry.cancel()

    async def _unless_stopping(self, work: Any) -> Any:
        """``await work``, or None if the agent is stopped first."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        return None if task.cancelled() else task.result()


def _ended(leases: set["asyncio.Task[None]"]) -> Callable[["asyncio.Task[None]"], None]:
    def discard(task: "asyncio.Task[None]") -> None:
        leases.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    return discard
