"""Choosing the runner once at start-up, and saying why."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiop.dagger_executor.adapters.breaker import CircuitBreaker, State
from aiop.dagger_executor.adapters.dagger_runner import DaggerRunner
from aiop.dagger_executor.adapters.engine import EngineCheck, choose_runner, detect_engine
from aiop.dagger_executor.adapters.fallback import DAGGER, Announce, FallbackRunner
from aiop.dagger_executor.adapters.isolation import Isolation
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import Runner

log = logging.getLogger("aiop.dagger_executor")


def select_runner(
    mode: str,
    check: EngineCheck | None = None,
    isolation: Isolation | None = None,
    *,
    breaker: CircuitBreaker | None = None,
    announce: Announce | None = None,
) -> tuple[Runner, EngineCheck]:
    """The runner for ``mode`` ("auto", "local" or "dagger") and the engine check behind it;
    the local runner keeps its steps apart as ``isolation`` says.

    With an engine, the runner is Dagger behind ``breaker``, falling back to the local
    runner while the engine fails, each change of the circuit told to ``announce``.
    "dagger" without an engine serves with the local runner rather than crash-looping.
    """
    local = LocalRunner(isolation)
    if mode == "local":
        log.info("runner: local (configured); %s", local.isolation.summary())
        return local, EngineCheck(False, "local runner configured")
    check = check or detect_engine()
    choice = choose_runner(mode, check)
    if choice.runner == "dagger":
        breaker = breaker or CircuitBreaker()
        log.info(
            "runner: dagger (%s); after %d engine failures in a row, the local runner until"
            " the engine answers again", check.reason, breaker.threshold,
        )  # fmt: skip
        return FallbackRunner(DaggerRunner(), local, breaker, announce), check
    level = logging.ERROR if mode == "dagger" else logging.WARNING
    log.log(level, "Dagger is unavailable: %s; serving with the local runner", check.reason)
    log.log(
        logging.WARNING if not local.isolation.separate_uids else logging.INFO,
        "local runner: %s", local.isolation.summary(),
    )  # fmt: skip
    return local, check


@dataclass(frozen=True)
class EngineStatus:
    """The Dagger engine as the executor knows it, for its heartbeat: ``reachable`` True
    (it answers), False (it fails, or there is none), None (not used, or being probed)."""

    reachable: bool | None = None
    detail: str = ""
    circuits: dict[str, str] = field(default_factory=dict)  # runner -> breaker state


def engine_status(mode: str, runner: Runner, check: EngineCheck) -> Callable[[], EngineStatus]:
    """What the heartbeat says of the engine: behind a breaker, its state now (the
    breaker is what learns of failures and probes); otherwise the start-up check."""
    if isinstance(runner, FallbackRunner):
        breaker = runner.breaker

        def current() -> EngineStatus:
            reachable = {State.CLOSED: True, State.OPEN: False}.get(breaker.state)
            return EngineStatus(reachable, breaker.reason or check.reason,
                                {DAGGER: breaker.state.value})  # fmt: skip

        return current
    fixed = EngineStatus(None if mode == "local" else check.available, check.reason)
    return lambda: fixed
