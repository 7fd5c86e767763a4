"""The whole platform, started the way a user starts it: ``aiop up`` in a directory."""

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest

from aiop.cli.identities import ADMIN, IDENTITY_DIR
from aiop.devstack import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120


@dataclass
class Platform:
    root: Path
    process: subprocess.Popen[str]
    gateway_url: str
    nats_url: str
    token: str
    output: list[str] = field(default_factory=list)
    lines: "queue.Queue[str]" = field(default_factory=queue.Queue)

    def aiop(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the CLI as a user would, from the platform's directory, no configuration."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")}
        return subprocess.run(
            [sys.executable, "-m", "aiop.cli", *args],
            cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    async def connect(self) -> nats.NATS:
        """A NATS client as the installation's admin: the bus takes no anonymous clients."""
        seed = self.root / ".aiop" / IDENTITY_DIR / f"{ADMIN}.nk"
        return await nats.connect(self.nats_url, nkeys_seed=str(seed))

    def pid_of(self, service: str) -> int:
        return int((self.root / ".aiop" / "pids" / f"{service}.pid").read_text())

    def wait_for_output(self, needle: str, timeout: float) -> str:
        """The first line of `aiop up` output (seen or still to come) that contains ``needle``."""
        for line in self.output:
            if needle in line:
                return line
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.output.append(line)
            if needle in line:
                return line
        raise AssertionError(
            f"`aiop up` never printed {needle!r}; got:\n" + "".join(self.output[-40:])
        )


def _pump(stream: "subprocess.IO[str]", into: "queue.Queue[str]") -> None:  # type: ignore[name-defined]
    for line in stream:
        into.put(line)


@contextlib.contextmanager
def launched(root: Path, settings: dict[str, str] | None = None) -> Iterator[Platform]:
    """`aiop up` in ``root`` (with the examples), stopped with Ctrl-C at the end;
    ``settings`` are AIOP_* variables every service gets."""
    (root / "examples").symlink_to(REPO / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")} | (settings or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "aiop.cli", "up", "--port", str(free_port())],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    platform = Platform(root, process, "", "", "", lines=lines)
    try:
        platform.wait_for_output("AIOP is up", STARTUP_TIMEOUT)
        stack = json.loads((root / ".aiop" / "stack.json").read_text())
        platform.gateway_url = stack["gateway_url"]
        platform.nats_url = stack["nats_url"]
        platform.token = platform.wait_for_output("token ", 1).split()[-1]
        yield platform
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform the e2e tests share, as a user starts it."""
    # A short agent lease: a killed agent's step goes to another agent within seconds.
    settings = {"AIOP_AGENT_LEASE_TTL_S": "4"}
    with launched(tmp_path_factory.mktemp("platform"), settings) as platform:
        yield platform
