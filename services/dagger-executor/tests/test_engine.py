"""Engine detection is quick, explains itself, and falls back to the local runner."""

import time

from aiop.dagger_executor.adapters.breaker import CircuitBreaker
from aiop.dagger_executor.adapters.engine import (
    EngineCheck,
    RunnerChoice,
    choose_runner,
    detect_engine,
)
from aiop.dagger_executor.adapters.fallback import FallbackRunner
from aiop.dagger_executor.adapters.selection import select_runner


def test_no_cli_means_unavailable_with_reason() -> None:
    check = detect_engine({"PATH": "/nonexistent"})
    assert not check.available
    assert "dagger" in check.reason


def test_cli_without_container_engine_is_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = tmp_path / "dagger"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    started = time.monotonic()
    check = detect_engine({"PATH": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert time.monotonic() - started < 2
    assert not check.available
    assert "no container engine" in check.reason


def test_dagger_session_counts_as_engine() -> None:
    check = detect_engine({"DAGGER_SESSION_PORT": "1234", "DAGGER_SESSION_TOKEN": "t"})
    assert check.available


def test_dagger_mode_without_engine_serves_locally(caplog) -> None:  # type: ignore[no-untyped-def]
    runner, _ = select_runner("dagger", EngineCheck(False, "no `dagger` CLI on PATH"))
    assert runner.name == "local"
    assert "Dagger is unavailable: no `dagger` CLI on PATH" in caplog.text


def test_auto_mode_uses_dagger_when_available() -> None:
    runner, _ = select_runner("auto", EngineCheck(True, "test"))
    assert runner.name == "dagger"


def test_the_runner_choice_says_why() -> None:
    assert choose_runner("local") == RunnerChoice("local", "AIOP_RUNNER=local")
    found = choose_runner("auto", EngineCheck(True, "dagger CLI /bin/dagger"))
    assert found.runner == "dagger"
    assert found.reason.startswith("dagger CLI /bin/dagger")
    missing = choose_runner("dagger", EngineCheck(False, "no `dagger` CLI on PATH"))
    assert missing == RunnerChoice(
        "local", "AIOP_RUNNER=dagger, but Dagger is unavailable: no `dagger` CLI on PATH"
    )


def test_with_an_engine_dagger_runs_behind_the_given_breaker() -> None:
    breaker = CircuitBreaker(threshold=5)
    runner, _ = select_runner("auto", EngineCheck(True, "test"), breaker=breaker)
    assert isinstance(runner, FallbackRunner)
    assert runner.breaker is breaker
    assert runner.local.name == "local"
