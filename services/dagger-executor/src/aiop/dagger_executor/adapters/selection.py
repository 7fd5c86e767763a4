"""Choosing the runner once at start-up, and saying why."""

import logging

from aiop.dagger_executor.adapters.dagger_runner import DaggerRunner
from aiop.dagger_executor.adapters.engine import EngineCheck, detect_engine
from aiop.dagger_executor.adapters.isolation import Isolation
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import Runner

log = logging.getLogger("aiop.dagger_executor")


def select_runner(
    mode: str, check: EngineCheck | None = None, isolation: Isolation | None = None
) -> tuple[Runner, EngineCheck]:
    """The runner for ``mode`` ("auto", "local" or "dagger") and the engine check behind it;
    the local runner keeps its steps apart as ``isolation`` says.

    "dagger" without an engine serves with the local runner rather than crash-looping.
    """
    local = LocalRunner(isolation)
    if mode == "local":
        log.info("runner: local (configured); %s", local.isolation.summary())
        return local, EngineCheck(False, "local runner configured")
    check = check or detect_engine()
    if check.available:
        log.info("runner: dagger (%s)", check.reason)
        return DaggerRunner(), check
    level = logging.ERROR if mode == "dagger" else logging.WARNING
    log.log(level, "Dagger is unavailable: %s; serving with the local runner", check.reason)
    log.log(
        logging.WARNING if not local.isolation.separate_uids else logging.INFO,
        "local runner: %s", local.isolation.summary(),
    )  # fmt: skip
    return local, check
