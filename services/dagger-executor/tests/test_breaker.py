"""The circuit breaker in front of the Dagger engine, on a clock the tests move; and what
an open circuit does to the executor's heartbeat."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiop.contracts import Event, ExecutorHeartbeat, StepSpec
from aiop.dagger_executor.adapters.breaker import Change, CircuitBreaker, State
from aiop.dagger_executor.adapters.dagger_runner import EngineError
from aiop.dagger_executor.adapters.engine import EngineCheck
from aiop.dagger_executor.adapters.fallback import FallbackRunner
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import REQUIRED_CAPABILITIES
from aiop.dagger_executor.adapters.selection import EngineStatus, engine_status
from aiop.dagger_executor.handlers import Executor, Identity
from aiop.dagger_executor.run import RunContext


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(threshold, cooldown_s=10.0, max_cooldown_s=35.0, clock=clock)


def test_it_opens_after_threshold_failures_in_a_row(clock: Clock) -> None:
    b = breaker(clock)
    assert b.failed("refused") is None
    assert b.failed("refused") is None
    assert b.closed
    change = b.failed("session lost")
    assert change == Change(State.OPEN, "3 engine failures in a row, the last: session lost", 3,
                            10.0)  # fmt: skip
    assert b.state is State.OPEN
    assert not b.closed


def test_an_answer_from_the_engine_resets_the_count(clock: Clock) -> None:
    b = breaker(clock)
    b.failed("x")
    b.failed("x")
    assert b.succeeded() is None  # a step ran, whatever its exit code
    b.failed("x")
    b.failed("x")
    assert b.closed
    assert b.failed("x") is not None


def test_no_probe_before_the_cooldown_then_exactly_one(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.failed("refused")
    assert b.probe_in() == 10.0
    clock.now += 9.9
    assert b.begin_probe() is None
    assert b.state is State.OPEN
    assert b.probe_in() == pytest.approx(0.1)
    clock.now += 0.1
    change = b.begin_probe()
    assert change is not None
    assert change.state is State.HALF_OPEN
    assert b.begin_probe() is None  # one probe at a time
    assert b.probe_in() is None
    assert not b.closed


def test_a_successful_probe_closes_it_and_resets_the_cooldown(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.failed("refused")
    clock.now += 10
    b.begin_probe()
    assert b.probe_failed("still refused") is not None  # cooldown now 20
    clock.now += 20
    b.begin_probe()
    change = b.probe_succeeded()
    assert change == Change(State.CLOSED, "the engine answered the probe")
    assert b.closed
    assert b.failures == 0
    b.failed("again")
    assert b.probe_in() == 10.0  # back to the first cooldown


def test_failed_probes_back_off_up_to_the_maximum(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.failed("refused")
    waits = []
    for _ in range(4):
        waits.append(b.probe_in())
        clock.now += b.probe_in() or 0
        assert b.begin_probe() is not None
        change = b.probe_failed("refused")
        assert change is not None
        assert change.state is State.OPEN
        assert change.reason == "probe failed: refused"
    assert waits == [10.0, 20.0, 35.0, 35.0]


def test_step_results_while_open_or_probing_change_nothing(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.failed("refused")
    assert b.failed("a step begun before") is None
    assert b.succeeded() is None
    assert b.state is State.OPEN
    clock.now += 10
    b.begin_probe()
    assert b.succeeded() is None
    assert b.failed("late") is None
    assert b.state.value == "half_open"  # only the probe's verdict counts
    assert b.probe_succeeded() is not None


def test_an_abandoned_probe_opens_it_again_without_backing_off(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.failed("refused")
    clock.now += 10
    b.begin_probe()
    change = b.probe_abandoned()
    assert change is not None
    assert change.state is State.OPEN
    assert "refused" in change.reason
    assert b.probe_in() == 10.0


def test_probe_verdicts_outside_a_probe_are_ignored(clock: Clock) -> None:
    b = breaker(clock)
    assert b.probe_succeeded() is None
    assert b.probe_failed("x") is None
    assert b.probe_abandoned() is None
    assert b.begin_probe() is None
    assert b.closed


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"cooldown_s": 0},
                                    {"cooldown_s": 20, "max_cooldown_s": 10}])  # fmt: skip
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)


class Engine:
    """A Dagger runner whose engine is always away."""

    name = "dagger"

    async def run(self, *_: Any) -> Any:
        raise AssertionError("no step goes to an engine behind an open circuit")

    async def ping(self) -> None:
        raise OSError("refused")

    async def close(self) -> None:
        pass


class Bus:
    def __init__(self) -> None:
        self.beats: list[ExecutorHeartbeat] = []

    async def publish(self, event: Event) -> None:
        if isinstance(event, ExecutorHeartbeat):
            self.beats.append(event)


async def test_the_heartbeat_stops_offering_dagger_while_the_circuit_is_open(
    clock: Clock, tmp_path: Path
) -> None:
    b = breaker(clock, threshold=1)
    runner = FallbackRunner(Engine(), LocalRunner(), b)
    engine = engine_status("auto", runner, EngineCheck(True, "engine at tcp://e:1234"))
    identity = Identity("ex-1", "default", ["dagger", "local"], 2, 0.01, runner.withheld,
                        engine=engine)  # fmt: skip
    bus = Bus()
    ctx = RunContext("ex-1", runner, bus, tmp_path)  # type: ignore[arg-type]
    executor = Executor(identity, bus, ctx, lambda: None)  # type: ignore[arg-type, return-value]
    beating = asyncio.create_task(executor._beat())
    try:
        await asyncio.sleep(0.05)
        assert bus.beats[-1].capabilities == ["dagger", "local"]
        assert bus.beats[-1].circuits == {"dagger": "closed"}
        assert bus.beats[-1].engine_reachable is True
        assert bus.beats[-1].engine_detail == "engine at tcp://e:1234"
        b.failed("refused")  # open
        await asyncio.sleep(0.05)
        assert bus.beats[-1].capabilities == ["local"]
        assert bus.beats[-1].circuits == {"dagger": "open"}
        assert bus.beats[-1].engine_reachable is False
        assert "refused" in bus.beats[-1].engine_detail
        clock.now += 10
        b.begin_probe()
        assert engine() == EngineStatus(None, b.reason, {"dagger": "half_open"})
        b.probe_succeeded()
        await asyncio.sleep(0.05)
        assert bus.beats[-1].capabilities == ["dagger", "local"]
        assert bus.beats[-1].engine_reachable is True
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await runner.close()


class Refusing(Engine):
    async def run(self, *_: Any) -> Any:
        raise EngineError("connection refused")


async def test_each_change_is_announced_in_order_and_a_failed_probe_backs_off(
    clock: Clock, tmp_path: Path
) -> None:
    changes: list[Change] = []

    async def announce(change: Change) -> None:
        await asyncio.sleep(0.01 if change.state is State.OPEN else 0)  # order kept anyway
        changes.append(change)

    b = breaker(clock, threshold=2)
    runner = FallbackRunner(Refusing(), LocalRunner(), b, announce)
    step = StepSpec(name="s", run=["true"])
    try:
        for _ in range(2):  # each engine failure counts; the step itself runs locally
            result = await runner.run(step, tmp_path, {}, {}, _sink)
            assert (result.exit_code, result.runner) == (0, "local")
        assert await runner.probe() is False  # not due yet: nothing happens
        clock.now += 10
        assert await runner.probe() is False  # due, and the engine is still away
        assert b.probe_in() == 20.0
        result = await runner.run(step, tmp_path, {}, {}, _sink)
        assert (result.exit_code, result.runner) == (0, "local")
    finally:
        await runner.close()
    assert [c.state for c in changes] == [State.OPEN, State.HALF_OPEN, State.OPEN]
    assert changes[-1].reason == "probe failed: refused"
    assert changes[-1].probe_in_s == 20.0


async def _sink(stream: str, text: str) -> None:
    pass


async def test_a_step_that_requires_dagger_is_not_rerun_locally(
    clock: Clock, tmp_path: Path
) -> None:
    runner = FallbackRunner(Refusing(), LocalRunner(), breaker(clock, threshold=2))
    token = REQUIRED_CAPABILITIES.set(frozenset({"dagger"}))
    try:
        result = await runner.run(StepSpec(name="s", run=["true"]), tmp_path, {}, {}, _sink)
    finally:
        REQUIRED_CAPABILITIES.reset(token)
        await runner.close()
    assert (result.exit_code, result.runner) == (None, "dagger")
    assert result.error == "the Dagger engine is unavailable: connection refused"
