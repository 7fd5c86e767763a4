"""``kill -9`` the executor at random moments while workflows stream in.

A killed attempt is never finished by anyone; the distributor sees the executor's
heartbeats stop and sends the workflow again as the next attempt to the restarted one.
"""

import asyncio
import random

import pytest

from tests.faults.harness import Platform
from tests.faults.ledger import settle
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def kill_executor_repeatedly(
    platform: Platform, load: Load, fault_random: random.Random, kills: int
) -> None:
    load.start()
    for _ in range(kills):
        # A random moment, not a wait for events.
        await asyncio.sleep(fault_random.uniform(0.5, 3.0))
        await platform.kill_service("dagger-executor")
    await load.stop()


@pytest.mark.timeout(240)
async def test_executor_killed_during_load(platform: Platform, fault_random: random.Random) -> None:
    load = Load(platform, rate=4)
    await kill_executor_repeatedly(platform, load, fault_random, kills=3)
    ledger = await settle(platform, load.accepted, "executor kill -9 x3", load.refused)
    ledger.check()


@pytest.mark.faults_full
@pytest.mark.timeout(900)
async def test_executor_killed_many_times(platform: Platform, fault_random: random.Random) -> None:
    load = Load(platform, rate=4)
    await kill_executor_repeatedly(platform, load, fault_random, kills=20)
    ledger = await settle(platform, load.accepted, "executor kill -9 x20", load.refused)
    ledger.check()
