"""``aiop up``: the whole platform on this machine, from wheels only.

NATS and PostgreSQL start on free local ports with their data under ``.aiop/``, then the
streams, the migrations, and the six services as supervised processes. A second
``aiop up`` in the same directory reuses the data.
"""

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
from nats.aio.client import Client

from aiop.cli.identities import ADMIN, OPERATOR, Identity, authorization
from aiop.cli.secretkeys import ensure_key_pair, secrets_env
from aiop.cli.services import MODULES
from aiop.cli.stack import STACK_FILE, STATE_DIR, Stack
from aiop.cli.supervisor import ServiceProcess, Supervisor
from aiop.contracts.queries import TokenReply, TokenRequest
from aiop.contracts.subjects import AUTH_TOKEN
from aiop.devstack import NatsServer, PostgresServer, free_port
from aiop.servicekit.rpc import request, wait_ready
from aiop.servicekit.streams import ensure_streams
from aiop.task_manager.adapters.roles import ROLE as TASK_MANAGER_ROLE

SERVICES = MODULES


def _gateway_port(preferred: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


async def _dev_token(nc: Client, key_file: Path) -> TokenReply:
    import msgspec

    api_key = key_file.read_text().strip()  # noqa: ASYNC240 - once at startup
    body = await request(nc, AUTH_TOKEN, TokenRequest(api_key=api_key))
    return msgspec.json.decode(body, type=TokenReply)


class MigrationFailed(RuntimeError):
    """``python -m aiop.task_manager migrate`` exited non-zero; its output is the message."""


async def launch_services(
    nc: Client,
    state: Path,
    nats_url: str,
    postgres: PostgresServer,
    gateway_url: str,
    say: Callable[[str], None],
    *,
    replicas: int = 1,
    extra_env: dict[str, str] | None = None,
    identities: dict[str, Identity] | None = None,
) -> Supervisor:
    """Streams, migrations, then the six services supervised; returns once all answer pings.

    ``aiop up`` calls this with its own NATS and PostgreSQL; the fault suite calls it with
    servers it kills and restarts (or a three-node cluster, with ``replicas=3``).
    """
    await ensure_streams(nc.jetstream(), replicas)
    # The superuser migrates and sets up task-manager's role; the service connects as
    # that role, which may touch its tables' rows and nothing else.
    role_password = secret(state, "postgres-task-manager")
    migrate = subprocess.run(  # noqa: ASYNC221 - before anything else runs
        [sys.executable, "-m", "aiop.task_manager", "migrate"],
        env={**os.environ, "AIOP_DATABASE_URL": postgres.url,
             "AIOP_DATABASE_ROLE_PASSWORD": role_password},
        capture_output=True, text=True,
    )  # fmt: skip
    if migrate.returncode != 0:
        raise MigrationFailed(migrate.stdout + migrate.stderr)
    # Secrets are sealed to the executors' key: the gateway gets the public key only.
    keys = ensure_key_pair(state / "secrets")
    env = {
        "AIOP_NATS_URL": nats_url,
        "AIOP_DATABASE_URL": postgres.url_for(TASK_MANAGER_ROLE, role_password),
        "AIOP_MIGRATE_ON_START": "false",
        "AIOP_TRACE_DIR": str(state / "traces"),
        "AIOP_AUTH_DIR": str(state / "auth"),
        "AIOP_AUTH_DEV_KEY_FILE": str(state / "dev-api-key"),
        "AIOP_WORK_DIR": str(state / "work"),
        "AIOP_GATEWAY_PORT": gateway_url.rsplit(":", 1)[1],
        "AIOP_GATEWAY_URL": gateway_url,  # for steps that call the API
        "AIOP_STREAM_REPLICAS": str(replicas),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    supervisor = Supervisor(
        [
            ServiceProcess(
                n,
                m,
                {**env, **_identity_env(identities, n), **secrets_env(keys, n)},
                state / "logs" / f"{n}.log",
            )
            for n, m in SERVICES.items()
        ],
        report=say,
    )
    await supervisor.start()
    try:
        for name in SERVICES:
            await wait_ready(nc, name, timeout=60)
            say(f"ready         {name}")
    except BaseException:
        await supervisor.stop()
        raise
    return supervisor


def secret(state: Path, name: str) -> str:
    """A password of the installation, made on first use, kept 0600 under ``secrets/``."""
    folder = state / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def step_isolation() -> str:
    """What keeps the executor's local steps from the platform, as the executor decides it
    on this host (same user, same tools installed)."""
    from aiop.dagger_executor.adapters.isolation import choose

    return choose(os.environ.get("AIOP_STEP_ISOLATION", "auto")).summary()


def step_runner() -> str:
    """The runner the executor will serve with, and why, as it decides it on this host
    (same environment): engine detection only, none of the executor's runners loaded."""
    from aiop.dagger_executor.adapters.engine import choose_runner

    choice = choose_runner(os.environ.get("AIOP_RUNNER", "auto").lower())
    return f"{choice.runner} ({choice.reason})"


def private_state(state: Path) -> None:
    """``.aiop`` traversable but not listable, each thing in it private, except the steps'
    work folder (each step's own folder in it is private to that step) and PostgreSQL's,
    whose server runs as a user of its own and guards its data itself. Applied at every
    start, so a folder made by an earlier version is closed too."""
    state.chmod(0o711)
    work = state / "work"
    work.mkdir(exist_ok=True)
    work.chmod(0o711)
    for entry in state.iterdir():
        if entry.name not in ("work", "postgres") and not entry.is_symlink():
            entry.chmod(0o700 if entry.is_dir() else 0o600)


def _identity_env(identities: dict[str, Identity] | None, service: str) -> dict[str, str]:
    """The service's NATS identity; the streams are already set up, with the admin's."""
    if identities is None:
        return {}
    return {
        "AIOP_NATS_SEED_FILE": str(identities[service].seed_file),
        "AIOP_CREATE_STREAMS": "false",
    }


async def run_stack(root: Path, gateway_port: int, say: Callable[[str], None]) -> int:
    began = time.monotonic()
    # Everything the platform writes is its own: keys, identities, data, logs. Steps,
    # under uids of their own, reach only their work directories.
    os.umask(0o077)
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    private_state(state)
    (state / STACK_FILE).unlink(missing_ok=True)
    bus_authorization, identities = authorization(state)
    nats_server = NatsServer(state / "nats", authorization=bus_authorization).start()
    postgres = PostgresServer(state / "postgres").start()
    state.chmod(0o711)  # PostgreSQL's helper opens the folders above its data to all
    say(f"nats-server   {nats_server.url}  (data {nats_server.data_dir})")
    say(f"postgres      127.0.0.1:{postgres.port}  (data {postgres.pgdata})")
    supervisor: Supervisor | None = None
    nc: Client | None = None
    try:
        nc = await nats.connect(
            nats_server.url, max_reconnect_attempts=-1,
            nkeys_seed=str(identities[ADMIN].seed_file),
        )  # fmt: skip
        gateway_url = f"http://127.0.0.1:{_gateway_port(gateway_port)}"
        try:
            supervisor = await launch_services(
                nc, state, nats_server.url, postgres, gateway_url, say, identities=identities
            )
        except MigrationFailed as exc:
            say(f"migrations failed:\n{exc}")
            return 1
        token = await _dev_token(nc, state / "dev-api-key")
        Stack(
            gateway_url=gateway_url,
            nats_url=nats_server.url,
            database_url=postgres.url_for(
                TASK_MANAGER_ROLE, secret(state, "postgres-task-manager")
            ),
            trace_dir=str(state / "traces"),
            dev_key_file=str(state / "dev-api-key"),
            pid=os.getpid(),
            operator_seed_file=str(identities[OPERATOR].seed_file),
        ).write(state)
        say("")
        say(f"AIOP is up in {time.monotonic() - began:.1f}s")
        say(f"  gateway      {gateway_url}")
        say(f"  console      {gateway_url}/ui  (sign in with the key in {state / 'dev-api-key'})")
        say(f"  token        {token.token}")
        say(
            f"               (principal {token.principal}, expires {token.expires_at:%H:%M:%S} UTC;"
        )
        say(f"                the CLI renews it from {state / 'dev-api-key'})")
        say(f"  runner       {step_runner()}")
        say(f"  steps        {step_isolation()}")
        say("  try          aiop submit examples/hello.yaml --wait")
        say("Ctrl-C stops everything.")
        await _until_signal()
        say("stopping...")
        return 0
    finally:
        (state / STACK_FILE).unlink(missing_ok=True)
        if supervisor is not None:
            await supervisor.stop()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        postgres.stop()
        nats_server.stop()


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
