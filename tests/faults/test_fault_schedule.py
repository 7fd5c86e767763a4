"""The fault timings of a test are replayed by its run's seed, without any server."""

import random

import pytest

from tests.faults.harness import SEED, fault_schedule

RESTART = "tests/faults/test_nats_faults.py::test_nats_restarted_on_same_store"
FREEZE = "tests/faults/test_nats_faults.py::test_nats_frozen_longer_than_ack_wait"


def moments(seed: int, nodeid: str) -> list[float]:
    schedule = fault_schedule(seed, nodeid)
    return [round(schedule.uniform(1.0, 3.0), 6) for _ in range(5)]


def test_a_seed_replays_each_tests_fault_moments() -> None:
    assert moments(7, RESTART) == moments(7, RESTART)
    assert moments(7, RESTART) != moments(7, FREEZE)
    assert moments(7, RESTART) != moments(8, RESTART)


def test_the_schedule_is_the_same_in_every_process() -> None:
    # A seed printed by one run must replay in the next, so nothing salted per process
    # (``hash()``) may go into it; these are seed 7's moments for RESTART.
    assert moments(7, RESTART)[:3] == [2.751546, 1.45642, 1.009868]


def test_fault_random_is_this_tests_schedule(
    fault_random: random.Random, request: pytest.FixtureRequest
) -> None:
    assert fault_random.random() == fault_schedule(SEED, request.node.nodeid).random()
