"""Is a Dagger engine reachable? Answered in well under a second, without network downloads.

The dagger-io SDK, left alone, downloads a CLI and starts an engine container; with no
container engine that fails slowly, and a service that crashes on it restarts forever
(docs/delivery.md, "A container engine"). So the executor checks the prerequisites itself and, when one
is missing, says which and serves with the local runner.
"""

import os
import shutil
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

CONNECT_TIMEOUT = 0.5


@dataclass(frozen=True)
class EngineCheck:
    available: bool
    reason: str


@dataclass(frozen=True)
class RunnerChoice:
    """The runner an executor serves with (``runner``: "dagger" or "local"), and why."""

    runner: str
    reason: str


def choose_runner(mode: str, check: EngineCheck | None = None) -> RunnerChoice:
    """The runner for AIOP_RUNNER ``mode`` ("auto", "local" or "dagger") on this host.

    "dagger" without an engine serves with the local runner rather than crash-looping;
    with one, the local runner still takes the steps while the engine fails (the circuit
    breaker, adapters/fallback.py).
    """
    if mode == "local":
        return RunnerChoice("local", "AIOP_RUNNER=local")
    check = check or detect_engine()
    if check.available:
        return RunnerChoice("dagger", f"{check.reason}; the local runner while the engine fails")
    if mode == "dagger":
        return RunnerChoice(
            "local", f"AIOP_RUNNER=dagger, but Dagger is unavailable: {check.reason}"
        )
    return RunnerChoice("local", f"Dagger is unavailable: {check.reason}")


def detect_engine(env: dict[str, str] | None = None) -> EngineCheck:
    env = dict(os.environ) if env is None else env
    if env.get("DAGGER_SESSION_PORT") and env.get("DAGGER_SESSION_TOKEN"):
        return EngineCheck(True, "running inside a Dagger session (DAGGER_SESSION_PORT)")
    cli = env.get("_EXPERIMENTAL_DAGGER_CLI_BIN") or shutil.which("dagger", path=env.get("PATH"))
    if not cli:
        return EngineCheck(False, "no `dagger` CLI on PATH and no DAGGER_SESSION_PORT")
    if runner_host := env.get("_EXPERIMENTAL_DAGGER_RUNNER_HOST"):
        return EngineCheck(True, f"dagger CLI {cli}, engine at {runner_host}")
    docker_host = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not _reachable(docker_host):
        return EngineCheck(
            False, f"dagger CLI {cli} found but no container engine answers at {docker_host}"
        )
    return EngineCheck(True, f"dagger CLI {cli}, container engine at {docker_host}")


def _reachable(address: str) -> bool:
    url = urlparse(address)
    try:
        if url.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(url.path)
            return True
        if url.scheme == "tcp" and url.hostname:
            with socket.create_connection((url.hostname, url.port or 2375), CONNECT_TIMEOUT):
                return True
    except OSError:
        return False
    return False
