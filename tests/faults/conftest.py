"""Fault scenarios: short variants run in CI; ``faults_full`` ones only when asked.

``AIOP_FAULTS_FULL=1 pytest -q tests/faults -p no:randomly`` (``task test:faults``)
runs everything; a plain ``pytest -q`` skips the long variants.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Platform, running
from tests.faults.ledger import PRINTED

FULL = os.environ.get("AIOP_FAULTS_FULL") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="long fault variant: set AIOP_FAULTS_FULL=1")
    for item in items:
        if not FULL and item.get_closest_marker("faults_full"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PRINTED:
        terminalreporter.section("fault ledgers")
        for line in PRINTED:
            terminalreporter.write_line(line)


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
