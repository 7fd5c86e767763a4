"""PostgreSQL stopped immediately (crash-like, recovery on start) during load.

Nothing restarts the services: task-manager's handlers fail while the database is away,
their messages are NAKed and delivered again, and the pool reconnects on its own.
"""

import asyncio
import random

import pytest

from tests.faults.harness import Platform
from tests.faults.ledger import settle
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def crash_postgres(
    platform: Platform, load: Load, fault_random: random.Random, times: int, down_s: float
) -> None:
    pids = {s: platform.pid_of(s) for s in ("task-manager", "gateway")}
    load.start()
    for _ in range(times):
        await asyncio.sleep(fault_random.uniform(1.0, 3.0))
        await asyncio.to_thread(platform.postgres.stop, "immediate")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(platform.postgres.start)  # same data dir and port
    await asyncio.sleep(2)
    await load.stop()
    # "Recover without being restarted": the same processes are still serving.
    assert {s: platform.pid_of(s) for s in pids} == pids, platform.log


@pytest.mark.timeout(240)
async def test_postgres_stopped_immediately_during_load(
    platform: Platform, fault_random: random.Random
) -> None:
    load = Load(platform, rate=4)
    await crash_postgres(platform, load, fault_random, times=1, down_s=4)
    ledger = await settle(platform, load.accepted, "postgres immediate stop x1", load.refused)
    ledger.check()


@pytest.mark.faults_full
@pytest.mark.timeout(900)
async def test_postgres_stopped_many_times(platform: Platform, fault_random: random.Random) -> None:
    load = Load(platform, rate=4)
    down_s = fault_random.uniform(2, 15)
    await crash_postgres(platform, load, fault_random, times=5, down_s=down_s)
    ledger = await settle(platform, load.accepted, "postgres immediate stop x5", load.refused)
    ledger.check()
