"""Fault scenarios: short variants run in CI; ``faults_full`` ones only when asked.

``AIOP_FAULTS_FULL=1 pytest -q tests/faults -p no:randomly`` (``task test:faults``)
runs everything; a plain ``pytest -q`` skips the long variants.

Fault moments and durations come from one seed per run, shown before the tests and in
the fault ledgers; ``AIOP_FAULTS_SEED=<seed>`` replays them, for the whole run or for
one test alone.
"""

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import SEED, SEED_VARIABLE, Platform, fault_schedule, running
from tests.faults.ledger import PRINTED

FULL = os.environ.get("AIOP_FAULTS_FULL") == "1"
SEED_LINE = f"fault seed: {SEED} (rerun with {SEED_VARIABLE}={SEED})"
SCHEDULED: list[str] = []  # node ids of the tests that drew fault timings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="long fault variant: set AIOP_FAULTS_FULL=1")
    for item in items:
        if not FULL and item.get_closest_marker("faults_full"):
            item.add_marker(skip)


def pytest_report_collectionfinish(items: list[pytest.Item]) -> str | None:
    # Not pytest_report_header: ``-q`` hides the header, and a run from the repository
    # root loads this file only while collecting, after the header is written.
    if any(item.get_closest_marker("faults") for item in items):
        return SEED_LINE
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Also without a ledger: a scenario that failed before counting is replayed the same way.
    if PRINTED or SCHEDULED:
        terminalreporter.section("fault ledgers")
        terminalreporter.write_line(SEED_LINE)
        for line in PRINTED:
            terminalreporter.write_line(line)


@pytest.fixture
def fault_random(request: pytest.FixtureRequest) -> random.Random:
    """This test's fault timings, the same whenever it runs with the same seed."""
    SCHEDULED.append(request.node.nodeid)
    return fault_schedule(SEED, request.node.nodeid)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    """The platform on a single nats-server and PostgreSQL of this test's own."""
    async with running(tmp_path) as platform:
        yield platform


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Platform]:
    """The platform on a three-node JetStream cluster with R3 streams."""
    async with running(tmp_path, nodes=3) as platform:
        yield platform
