"""A three-node JetStream cluster with R3 streams and buckets: kill one node during load.

Two nodes keep a quorum, so every stream stays writable once a new leader is elected;
clients given all three URLs reconnect to a live node.
"""

import asyncio
import random

import pytest

from aiop.contracts.subjects import STREAM_EVENTS
from aiop.devstack import NatsServer, until
from tests.faults.harness import Platform
from tests.faults.ledger import settle
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def leader(platform: Platform) -> NatsServer:
    """The node leading the AIOP stream: killing it forces an election mid-load."""

    async def elected() -> NatsServer | None:  # none while an election is still going on
        try:
            info = await platform.nc.jetstream().stream_info(STREAM_EVENTS)
        except Exception:
            return None
        name = info.cluster.leader if info.cluster else None
        return next((s for s in platform.nats if s.name == name and s.alive()), None)

    return await until(elected, 60, "a leader of the AIOP stream")


async def kill_nodes(
    platform: Platform, load: Load, fault_random: random.Random, kills: int, restart: bool
) -> None:
    load.start()
    for _ in range(kills):
        await asyncio.sleep(fault_random.uniform(1.0, 3.0))
        node = await leader(platform)
        await asyncio.to_thread(node.kill)
        if restart:  # back on its own store; it catches up from the others
            await asyncio.sleep(fault_random.uniform(1.0, 4.0))
            await asyncio.to_thread(node.start)
    await asyncio.sleep(5)  # load goes on against what is left
    await load.stop()
    await platform.ready()


@pytest.mark.timeout(300)
async def test_cluster_node_killed_during_load(
    cluster: Platform, fault_random: random.Random
) -> None:
    load = Load(cluster, rate=4)
    await kill_nodes(cluster, load, fault_random, kills=1, restart=False)
    ledger = await settle(cluster, load.accepted, "cluster: stream leader kill -9", load.refused)
    ledger.check()


@pytest.mark.faults_full
@pytest.mark.timeout(900)
async def test_cluster_leaders_killed_and_restarted(
    cluster: Platform, fault_random: random.Random
) -> None:
    load = Load(cluster, rate=4)
    await kill_nodes(cluster, load, fault_random, kills=6, restart=True)
    ledger = await settle(
        cluster, load.accepted, "cluster: leader kill -9 + restart x6", load.refused
    )
    ledger.check()
