"""What a handler gets besides its input: the step it works on, the outputs of the steps
it needs, and a way to say how far it got, without waiting on the network."""

import asyncio
import json
import logging
import threading
from collections.abc import Generator, Mapping
from typing import Any, Literal, NoReturn

Stream = Literal["stdout", "stderr"]
FLUSH_LINES = 200  # this many log lines waiting: sent before the next heartbeat is due
FLUSH_BYTES = 32 * 1024


class StepFailure(Exception):
    """Raised by a handler (or by ``ctx.fail``): the step's try fails with this message
    as its error, and no traceback."""


class Queued:
    """What ``ctx.progress`` and ``ctx.log`` return. The report is queued when they are
    called (so a handler in a thread need not await it); awaiting it is allowed so that
    async handlers read naturally, and returns at once."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that yields nothing: an awaitable that is already done


class Outbox:
    """Progress and log lines waiting to be sent, filled from the handler (in the event
    loop or in a thread) and emptied by the lease's reporter."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._progress: dict[str, Any] | None = None
        self._lines: list[dict[str, str]] = []
        self._size = 0
        self.ready = asyncio.Event()  # something should go now, not at the next heartbeat

    def put_progress(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._progress = report  # only the latest matters
        self._wake()

    def put_lines(self, stream: Stream, text: str) -> None:
        lines = [{"stream": stream, "text": line} for line in text.splitlines() or [""]]
        with self._lock:
            self._lines += lines
            self._size += sum(len(line["text"]) for line in lines)
            full = len(self._lines) >= FLUSH_LINES or self._size >= FLUSH_BYTES
        if full:
            self._wake()

    def take(self) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
        with self._lock:
            progress, lines = self._progress, self._lines
            self._progress, self._lines, self._size = None, [], 0
        return progress, lines

    def _wake(self) -> None:
        if _in_loop(self._loop):
            self.ready.set()
        else:
            self._loop.call_soon_threadsafe(self.ready.set)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Context:
    """One lease of one step: ``ctx`` in ``async def handler(input, ctx)``."""

    def __init__(
        self, lease: Mapping[str, Any], outbox: Outbox, cancelled: threading.Event
    ) -> None:
        self.lease_id: str = str(lease["lease_id"])
        self.work_id: str = str(lease["work_id"])
        self.workflow_id: str = str(lease["workflow_id"])
        self.attempt: int = int(lease["attempt"])
        self.step: str = str(lease["step"])
        self.try_number: int = int(lease["try_number"])
        self.capability: str = str(lease["capability"])
        self.timeout_s: float | None = lease.get("timeout_s")
        # Each needed step's JSON output: a container step's summary, an agent's output.
        self.needs: dict[str, dict[str, Any]] = dict(lease.get("needs") or {})
        self._outbox = outbox
        self._cancelled = cancelled
        self._logger: logging.Logger | None = None

    @property
    def cancelled(self) -> bool:
        """The gateway said to stop (the step was cancelled or timed out), or the lease
        was lost. An async handler is cancelled too; a handler in a thread should look."""
        return self._cancelled.is_set()

    def progress(self, percent: float, message: str | None = None, partial: Any = None) -> Queued:
        """How far the step got (0 to 100), what it is doing, and any partial result (JSON):
        an ``aiop.step.progress.v1`` event. Sent promptly; a later call replaces one not
        yet sent."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be between 0 and 100, not {percent}")
        json.dumps(partial, allow_nan=False)  # one that is not JSON fails here, in the handler
        self._outbox.put_progress({"percent": percent, "message": message, "partial": partial})
        return Queued()

    def log(self, text: str, stream: Stream = "stdout") -> Queued:
        """Lines of the step's output (``aiop logs``), sent in batches with the heartbeats."""
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        self._outbox.put_lines(stream, text)
        return Queued()

    @property
    def logger(self) -> logging.Logger:
        """A logger whose records become the step's output (warnings and worse on stderr)."""
        if self._logger is None:
            # Not from logging.getLogger: it would live on after the step, in a registry.
            self._logger = logging.Logger(f"aiop.agent.{self.step}", logging.INFO)
            self._logger.addHandler(_StepOutput(self))
        return self._logger

    def fail(self, error: str) -> NoReturn:
        """End the try as failed with ``error`` (its retry policy may offer a new try)."""
        raise StepFailure(error)


class _StepOutput(logging.Handler):
    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.ctx.log(
            self.format(record), "stderr" if record.levelno >= logging.WARNING else "stdout"
        )
