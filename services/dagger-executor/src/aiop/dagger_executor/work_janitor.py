"""Removing the work directories of finished runs.

A run's outcome is published before its directory goes: what it kept is in the step store
(outputs), the rest is scratch. Removal is batched, once a second in one worker thread,
because a directory removal costs tens of microseconds on a journaling file system, and a
thread hop per run costs more than that: neither belongs in a run's latency.
"""

import asyncio
import contextlib
import shutil
from pathlib import Path

SWEEP_EVERY_S = 1.0


class WorkJanitor:
    def __init__(self, every_s: float = SWEEP_EVERY_S) -> None:
        self._every_s = every_s
        self._finished: list[Path] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._sweeping: set[asyncio.Future[None]] = set()

    def finished(self, attempt_dir: Path) -> None:
        """``<work>/<workflow>/<attempt>`` is no longer needed."""
        if not attempt_dir.exists():  # every step was a cache hit without outputs
            return
        self._finished.append(attempt_dir)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self._every_s, self._start)

    async def flush(self) -> None:
        """Remove everything finished so far, and wait for it (the executor stopping)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._start()
        await asyncio.gather(*self._sweeping)

    def _start(self) -> None:
        self._sweep = None
        batch, self._finished = self._finished, []
        future = asyncio.get_running_loop().run_in_executor(None, _remove, batch)
        self._sweeping.add(future)
        future.add_done_callback(self._sweeping.discard)


def _remove(batch: list[Path]) -> None:
    for attempt_dir in batch:
        shutil.rmtree(attempt_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # another attempt of the workflow still runs
            attempt_dir.parent.rmdir()
