"""nats-server restarted on the same store, and frozen (SIGSTOP) past the ack wait.

Every service keeps reconnecting; what was stored before the restart is still there
(``sync_interval: always``), and what was delivered but not acked before the freeze is
delivered again after it, to consumers that apply each event once.
"""

import asyncio
import random

import pytest

from tests.faults.harness import Platform
from tests.faults.ledger import settle
from tests.faults.load import Load

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ACK_WAIT_S = 30.0  # every service's DeliveryPolicy.ack_wait


async def restart_nats(
    platform: Platform, load: Load, fault_random: random.Random, restarts: int
) -> None:
    server = platform.nats[0]
    load.start()
    for n in range(restarts):
        await asyncio.sleep(fault_random.uniform(1.0, 3.0))
        # kill -9 and a clean stop by turns: both must come back with the same store.
        await asyncio.to_thread(server.kill if n % 2 == 0 else server.stop)
        await asyncio.sleep(fault_random.uniform(0.2, 2.0))
        await asyncio.to_thread(server.start)  # same data dir, same port
    await asyncio.sleep(2)
    await load.stop()
    await platform.ready()


async def freeze_nats(
    platform: Platform, load: Load, fault_random: random.Random, seconds: float, times: int = 1
) -> None:
    server = platform.nats[0]
    load.start()
    for _ in range(times):
        await asyncio.sleep(fault_random.uniform(1.0, 3.0))
        server.pause()
        try:
            await asyncio.sleep(seconds)
        finally:
            server.resume()
    await asyncio.sleep(2)
    await load.stop()
    await platform.ready()


@pytest.mark.timeout(240)
async def test_nats_restarted_on_same_store(
    platform: Platform, fault_random: random.Random
) -> None:
    load = Load(platform, rate=4)
    await restart_nats(platform, load, fault_random, restarts=2)
    ledger = await settle(platform, load.accepted, "nats restart x2", load.refused)
    ledger.check()


@pytest.mark.timeout(240)
async def test_nats_frozen_longer_than_ack_wait(
    platform: Platform, fault_random: random.Random
) -> None:
    load = Load(platform, rate=4)
    await freeze_nats(platform, load, fault_random, ACK_WAIT_S + 5)
    ledger = await settle(
        platform, load.accepted, f"nats SIGSTOP {ACK_WAIT_S + 5:.0f}s", load.refused
    )
    ledger.check()


@pytest.mark.faults_full
@pytest.mark.timeout(900)
async def test_nats_restarted_many_times(platform: Platform, fault_random: random.Random) -> None:
    load = Load(platform, rate=4)
    await restart_nats(platform, load, fault_random, restarts=10)
    ledger = await settle(platform, load.accepted, "nats restart x10", load.refused)
    ledger.check()


@pytest.mark.faults_full
@pytest.mark.timeout(900)
async def test_nats_frozen_twice(platform: Platform, fault_random: random.Random) -> None:
    load = Load(platform, rate=4)
    await freeze_nats(platform, load, fault_random, ACK_WAIT_S * 2, times=2)
    ledger = await settle(platform, load.accepted, "nats SIGSTOP 60s x2", load.refused)
    ledger.check()
