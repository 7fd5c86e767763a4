"""The executor's runner when it has a Dagger engine: Dagger while the engine answers,
the local runner while it does not.

A circuit breaker (adapters/breaker.py) watches the engine. An engine failure (connection
refused, session lost; never a step's non-zero exit) counts against the engine, not the
step: the step runs again at once with the local runner, its output saying why (a
workflow that requires ``dagger`` fails it instead). Enough failures in a row open the
circuit. While it is open:

- steps run with the local runner, and their result says so (``StepResult.runner``);
- a step of a workflow that requires ``dagger`` is not run locally: it fails, saying why;
- ``withheld()`` names ``dagger``, which the executor's heartbeat then stops offering, so
  the distributor sends such workflows elsewhere, or holds them until it is back;
- after the cooldown one probe (a fresh session and a version query, never a step) is let
  through, from a task of its own, so the circuit closes even while no work comes in.
  Its success closes the circuit; its failure opens it again for twice as long (capped).

Each change of state is announced (``announce``: ExecutorCircuitChanged on the bus), in
order, without holding up the step that caused it.
"""

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiop.contracts import Event, ExecutorCircuitChanged, StepSpec
from aiop.dagger_executor.adapters.breaker import Change, CircuitBreaker, State
from aiop.dagger_executor.adapters.dagger_runner import EngineError
from aiop.dagger_executor.adapters.runner import (
    REQUIRED_CAPABILITIES,
    OutputSink,
    Runner,
    StepResult,
)
from aiop.servicekit.tasks import cancel_and_wait

log = logging.getLogger("aiop.dagger_executor")

DAGGER = "dagger"
PROBE_TIMEOUT_S = 120.0  # a fresh session may have to start an engine first
ANNOUNCE_GRACE_S = 5.0  # how long closing waits for announcements still being published

Announce = Callable[[Change], Awaitable[None]]


class EngineRunner(Runner, Protocol):
    async def ping(self) -> None:
        """Raise unless the engine answers."""
        ...


class FallbackRunner:
    def __init__(
        self,
        dagger: EngineRunner,
        local: Runner,
        breaker: CircuitBreaker | None = None,
        announce: Announce | None = None,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.dagger = dagger
        self.local = local
        self.breaker = breaker or CircuitBreaker()
        self._announce = announce
        self._probe_timeout_s = probe_timeout_s
        self._prober: asyncio.Task[None] | None = None
        # The last announcement under way; each one waits for the one before.
        self._announcing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return DAGGER if self.breaker.closed else self.local.name

    def withheld(self) -> frozenset[str]:
        """The capabilities this executor cannot offer now."""
        return frozenset() if self.breaker.closed else frozenset({DAGGER})

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult:
        if self.breaker.closed:
            try:
                result = await self.dagger.run(step, workdir, env, secrets, on_output)
            except EngineError as exc:
                self._changed(self.breaker.failed(str(exc)))
                if DAGGER in REQUIRED_CAPABILITIES.get():
                    error = f"the Dagger engine is unavailable: {exc}"
                    return StepResult(None, error, runner=DAGGER)
                await on_output(
                    "stderr",
                    f"[aiop] the Dagger engine is unavailable ({exc}): running the step with"
                    " the local runner\n",
                )
            else:
                self._changed(self.breaker.succeeded())
                return dataclasses.replace(result, runner=DAGGER)
        elif DAGGER in REQUIRED_CAPABILITIES.get():
            return StepResult(
                None,
                "the workflow requires dagger, and this executor's Dagger engine is unavailable"
                f" (circuit {self.breaker.state}: {self.breaker.reason}); not run locally",
            )
        result = await self.local.run(step, workdir, env, secrets, on_output)
        return dataclasses.replace(result, runner=self.local.name)

    async def probe(self) -> bool:
        """Probe the engine if a probe is due; whether the circuit is closed after."""
        change = self.breaker.begin_probe()
        if change is None:
            return self.breaker.closed
        self._changed(change)
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self.dagger.ping()
        except asyncio.CancelledError:
            self._changed(self.breaker.probe_abandoned())
            raise
        except TimeoutError:
            self._changed(self.breaker.probe_failed(f"no answer in {self._probe_timeout_s:g}s"))
        except Exception as exc:
            self._changed(self.breaker.probe_failed(str(exc) or repr(exc)))
        else:
            self._changed(self.breaker.probe_succeeded())
        return self.breaker.closed

    async def close(self) -> None:
        if self._prober is not None:
            await cancel_and_wait([self._prober])
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=ANNOUNCE_GRACE_S)
            await cancel_and_wait(pending)
        await self.dagger.close()
        await self.local.close()

    # -- state changes --------------------------------------------------------------------

    def _changed(self, change: Change | None) -> None:
        if change is None:
            return
        level = logging.INFO if change.state is State.CLOSED else logging.WARNING
        log.log(level, "Dagger circuit %s: %s", change.state, change.reason)
        if self._announce is not None:
            self._spawn(self._send(change, self._announcing))
        if change.state is State.OPEN and (self._prober is None or self._prober.done()):
            # A context of its own: not part of the step (or its trace) that opened it.
            self._prober = asyncio.create_task(
                self._probe_when_due(), name="dagger probe", context=contextvars.Context()
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, context=contextvars.Context())
        self._announcing = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, change: Change, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        assert self._announce is not None
        try:
            await self._announce(change)
        except Exception:
            log.exception("announcing Dagger circuit %s failed", change.state)

    async def _probe_when_due(self) -> None:
        while (wait := self.breaker.probe_in()) is not None:
            await asyncio.sleep(wait)
            with contextlib.suppress(Exception):  # probe() says what went wrong itself
                await self.probe()


def circuit_announcer(
    publish: Callable[[Event], Awaitable[None]], executor_id: str, pool: str
) -> Announce:
    """Announce each change as ExecutorCircuitChanged through ``publish``."""

    async def announce(change: Change) -> None:
        await publish(
            ExecutorCircuitChanged(
                executor_id=executor_id,
                pool=pool,
                state=change.state.value,
                reason=change.reason,
                runner=DAGGER if change.state is State.CLOSED else "local",
                failures=change.failures,
                probe_in_s=change.probe_in_s,
            )
        )

    return announce
