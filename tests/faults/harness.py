"""The six services on servers the test owns, so a test can kill, pause and restart them.

``aiop up`` owns its servers; here ``launch_services`` gets NATS (one node or a
three-node cluster) and PostgreSQL that the scenario breaks on purpose.
"""

import asyncio
import contextlib
import hashlib
import os
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from aiop.cli.identities import ADMIN, authorization
from aiop.cli.supervisor import Supervisor
from aiop.cli.up import launch_services
from aiop.devstack import NatsServer, PostgresServer, free_port, until
from aiop.servicekit.rpc import wait_ready

SEED_VARIABLE = "AIOP_FAULTS_SEED"


def run_seed() -> int:
    """The seed of this run's fault timings: the given one replays a run, else a new one."""
    given = os.environ.get(SEED_VARIABLE, "").strip()
    if not given:
        return random.SystemRandom().randrange(2**32)
    try:
        return int(given)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be an integer, not {given!r}") from None


SEED = run_seed()


def fault_schedule(seed: int, nodeid: str) -> random.Random:
    """The random source of one test's fault moments and durations.

    Drawn from the run's seed and the test's node id, not from a shared generator, so a
    test rerun alone gets the schedule it had in the whole run; sha256, unlike ``hash()``,
    is the same in every process."""
    digest = hashlib.sha256(f"{seed}\n{nodeid}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


# The load and the ledger's polling are one principal at one address, well past what the
# gateway's limits allow a client; these scenarios are about delivery, not about limits.
# Their steps append to an effects file outside their work directories, which a step
# under a uid of its own, or in a read-only namespace, may not write: isolation is the
# business of other tests.
FAULT_ENV = {
    "AIOP_RATE_LIMIT_PER_PRINCIPAL": "",
    "AIOP_RATE_LIMIT_PER_ADDRESS": "",
    "AIOP_RATE_LIMIT_TOKEN_REQUESTS": "",
    "AIOP_STEP_ISOLATION": "off",
}


@dataclass
class Platform:
    root: Path
    nats: list[NatsServer]
    postgres: PostgresServer
    nc: Client
    gateway_url: str
    supervisor: Supervisor | None = None
    token: str = ""
    log: list[str] = field(default_factory=list)  # the supervisor's crash/restart reports

    @property
    def nats_url(self) -> str:
        return ",".join(server.url for server in self.nats)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def effects(self) -> Path:
        """Each step appends ``<workflow> <step> <attempt>`` here when its effect happens."""
        return self.root / "effects"

    def pid_of(self, service: str) -> int:
        return int((self.state / "pids" / f"{service}.pid").read_text())

    async def kill_service(self, service: str, timeout: float = 60) -> None:
        """``kill -9`` one service, then wait until the supervisor has it answering again."""
        old = self.pid_of(service)
        os.kill(old, signal.SIGKILL)
        # A new pid file is the supervisor's only sign of the restart.
        await until(lambda: self.pid_of(service) != old, timeout, f"{service} restarted")
        await wait_ready(self.nc, service, timeout)

    async def ready(self, timeout: float = 60) -> None:
        """Every service answers a ping (after a fault, before counting)."""
        for service in ("auth", "task-manager", "distributor", "dagger-executor", "reporter"):
            await wait_ready(self.nc, service, timeout)
        await wait_ready(self.nc, "gateway", timeout)


def nats_nodes(root: Path, count: int, bus: dict[str, Any]) -> list[NatsServer]:
    if count == 1:
        return [NatsServer(root / "nats", authorization=bus)]
    routes = [free_port() for _ in range(count)]
    return [
        NatsServer(
            root / f"nats{i}", name=f"n{i}", cluster=(own, [p for p in routes if p != own]),
            authorization=bus,
        )
        for i, own in enumerate(routes)
    ]  # fmt: skip


async def jetstream_ready(nc: Client, replicas: int = 1, timeout: float = 60) -> None:
    """A new cluster answers JetStream requests only once it has elected a meta leader,
    and places a stream of ``replicas`` only once that many peers are online: a probe
    stream is created (and removed) to know."""
    js = nc.jetstream()
    probe = StreamConfig(name="AIOP_PLACEMENT_PROBE", subjects=["aiop-placement-probe"],
                         num_replicas=replicas, storage=StorageType.MEMORY)  # fmt: skip

    async def answers() -> bool:
        try:
            await js.account_info()
            if replicas > 1:
                await js.add_stream(probe)
                await js.delete_stream(probe.name or "")
        except Exception:
            return False
        return True

    await until(answers, timeout, f"JetStream answering and placing {replicas} replicas")


@contextlib.asynccontextmanager
async def running(root: Path, nodes: int = 1) -> AsyncIterator[Platform]:
    # The bus as `aiop up` configures it: every client authenticates.
    bus, identities = authorization(root / "state")
    servers = nats_nodes(root, nodes, bus)
    # Cluster nodes only listen for clients once they can; start them side by side.
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    postgres = PostgresServer(root / "pg")
    await asyncio.to_thread(postgres.start)
    nc = await nats.connect(
        servers=[s.url for s in servers], max_reconnect_attempts=-1, reconnect_time_wait=0.2,
        nkeys_seed=str(identities[ADMIN].seed_file),
    )  # fmt: skip
    platform = Platform(root, servers, postgres, nc, f"http://127.0.0.1:{free_port()}")
    try:
        await jetstream_ready(nc, replicas=nodes)
        platform.supervisor = await launch_services(
            nc, platform.state, platform.nats_url, postgres, platform.gateway_url,
            platform.log.append, replicas=3 if nodes > 1 else 1, extra_env=FAULT_ENV,
            identities=identities,
        )  # fmt: skip
        api_key = (platform.state / "dev-api-key").read_text().strip()
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as http:
            reply = await http.post("/v1/tokens", json={"api_key": api_key})
            reply.raise_for_status()
            platform.token = reply.json()["token"]
        yield platform
    finally:
        if platform.supervisor is not None:
            await platform.supervisor.stop()
        with contextlib.suppress(Exception):
            await nc.close()
        for server in servers:
            server.kill()  # the store is thrown away; no need for a clean shutdown
        postgres.stop("immediate")
        if platform.log:
            print("supervisor:", *platform.log, sep="\n  ")
