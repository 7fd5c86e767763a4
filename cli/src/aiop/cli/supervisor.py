"""Runs each service as its own process and restarts it when it dies, showing the crash."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Restart delay grows while a service keeps crashing, and resets once it has stayed up.
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
STABLE_AFTER_S = 30.0


@dataclass
class ServiceProcess:
    name: str  # e.g. "task-manager"
    module: str  # e.g. "aiop.task_manager"
    env: dict[str, str]
    log_file: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    crashes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:  # noqa: ASYNC230 - once per (re)start
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module,
                env={**os.environ, **self.env}, stdout=log, stderr=log,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops us in order
            )  # fmt: skip
        # Operators (and the fault tests) find a service's current process here.
        pid_file = self.log_file.parent.parent / "pids" / f"{self.name}.pid"
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(self.process.pid))

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Supervisor:
    def __init__(self, services: list[ServiceProcess], report: Callable[[str], None]) -> None:
        self.services = services
        self.report = report
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for service in self.services:
            await service.spawn()
            self._tasks.append(asyncio.create_task(self._watch(service)))

    async def _watch(self, service: ServiceProcess) -> None:
        failures = 0
        while True:
            assert service.process is not None
            started = time.monotonic()
            code = await service.process.wait()
            if self.stopping:
                return
            if time.monotonic() - started > STABLE_AFTER_S:
                failures = 0
            delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            failures += 1
            service.restarts += 1
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            service.crashes.append(how)
            tail = service.log_tail()
            self.report(
                f"[crash] {service.name} {how}; restarting in {delay:.1f}s "
                f"(restart #{service.restarts}). Last log lines:\n{_indent(tail)}"
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await service.spawn()
            self.report(f"[restart] {service.name} is running again (pid {service.pid})")

    async def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        running = [s for s in self.services if s.process and s.process.returncode is None]
        for service in running:
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        for service in running:
            assert service.process is not None
            try:
                await asyncio.wait_for(service.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):  # it exited just now after all
                    service.process.kill()
                await service.process.wait()


def _indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.splitlines())
