"""Schemathesis against the gateway of a platform of this test's own (its load stays
away from the other e2e tests): every check, a bounded number of examples, zero
failures. The per-operation expectations are in schemathesis.toml."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Platform, launched

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with launched(tmp_path_factory.mktemp("fuzzed")) as platform:
        yield platform


@pytest.mark.timeout(600)
def test_the_api_answers_as_its_openapi_document_says(fuzzed: Platform) -> None:
    st = Path(sys.executable).parent / "st"
    run = subprocess.run(
        [
            str(st), "run", f"{fuzzed.gateway_url}/openapi.json",
            "--header", f"Authorization: Bearer {fuzzed.token}",
            "--checks", "all", "--max-examples", "25", "--no-color",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    # The failures first (each names its operation and how to reproduce it), then the end.
    failures = run.stdout.find("= FAILURES =")
    report = (run.stdout[failures : failures + 6000] if failures >= 0 else "") + (
        run.stdout[-3000:] + run.stderr[-2000:]
    )
    assert run.returncode == 0, report
    assert " passed" in run.stdout, report
