"""The platform under benchmark: ``aiop up`` in a fresh directory, as a user starts it."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats

from aiop.cli.identities import ADMIN, IDENTITY_DIR
from aiop.devstack import free_port

SERVICES = ("auth", "task-manager", "distributor", "dagger-executor", "reporter", "gateway")


@dataclass
class Platform:
    root: Path
    process: subprocess.Popen[str]
    gateway_url: str = ""
    nats_url: str = ""
    token: str = ""
    ready_s: float = 0.0
    output: list[str] = field(default_factory=list)

    def pid_of(self, service: str) -> int:
        return int((self.root / ".aiop" / "pids" / f"{service}.pid").read_text())

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each service process, from /proc."""
        sizes = {}
        for service in SERVICES:
            status = Path(f"/proc/{self.pid_of(service)}/status").read_text()
            kib = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            sizes[service] = kib / 1024
        return sizes

    async def connect(self) -> nats.NATS:
        """A NATS client as the installation's admin: the bus takes no anonymous clients."""
        seed = self.root / ".aiop" / IDENTITY_DIR / f"{ADMIN}.nk"
        return await nats.connect(self.nats_url, nkeys_seed=str(seed))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """nats-server and PostgreSQL run in their own sessions: if `aiop up` had to be
        killed, stop whatever still runs from this platform's directory."""
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                if str(self.root) in cmdline.read_bytes().decode(errors="replace"):
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)


LIMITS = ("PER_PRINCIPAL", "PER_ADDRESS", "TOKEN_REQUESTS")


def start(timeout: float = 120) -> Platform:
    """``aiop up`` in a new temporary directory; returns once it prints its token."""
    root = Path(tempfile.mkdtemp(prefix="aiop-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")}
    # The load is one principal at one address, far past a client's limits: limits high
    # enough never to trip, so that their cost is still measured.
    # Two windows each, as the defaults have.
    limit = "" if os.environ.get("AIOP_BENCH_LIMITS_OFF") else "1000000/second;60000000/minute"
    env |= {f"AIOP_RATE_LIMIT_{name}": limit for name in LIMITS}
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "aiop.cli", "up", "--port", str(free_port())],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    platform = Platform(root, process)
    assert process.stdout is not None
    deadline = began + timeout
    for line in process.stdout:
        platform.output.append(line)
        if "AIOP is up" in line:
            platform.ready_s = time.monotonic() - began
        if line.strip().startswith("token ") and platform.ready_s:
            platform.token = line.split()[-1]
            break
        if time.monotonic() > deadline:
            break
    if not platform.token:
        platform.stop()
        raise RuntimeError("`aiop up` did not come up:\n" + "".join(platform.output[-40:]))
    stack = json.loads((root / ".aiop" / "stack.json").read_text())
    platform.gateway_url = stack["gateway_url"]
    platform.nats_url = stack["nats_url"]
    # Keep draining the output so the supervisor never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    httpx.get(f"{platform.gateway_url}/healthz", timeout=10)
    return platform
