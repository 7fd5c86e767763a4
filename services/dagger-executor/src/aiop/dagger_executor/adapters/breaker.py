"""A circuit breaker in front of the Dagger engine: pure state, a clock passed in.

``closed``: steps go to the engine; each engine failure (it cannot be reached, the
session was lost; never a step's own non-zero exit) counts, each engine answer resets the
count. ``threshold`` failures in a row open it. ``open``: no step goes to the engine
until ``cooldown`` has passed; then one probe may be let through (``begin_probe``), and
the circuit is ``half_open`` until its verdict. The probe's success closes it; its
failure opens it again with the cooldown doubled, up to ``max_cooldown_s``, so an
engine that stays away is asked less and less often and nothing ever loops hot.

Every method that changes the state returns the ``Change`` for the caller to announce.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Change:
    """The state the breaker moved to, and why. ``probe_in_s``: when open, the seconds
    until a probe is due."""

    state: State
    reason: str
    failures: int = 0
    probe_in_s: float | None = None


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        max_cooldown_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold}")
        if not 0 < cooldown_s <= max_cooldown_s:
            raise ValueError("cooldown_s must be positive and at most max_cooldown_s")
        self.threshold = threshold
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self.state = State.CLOSED
        self.reason = ""
        self.failures = 0  # consecutive engine failures (closed), or the ones that opened it
        self.last_error = ""
        self.cooldown_s = cooldown_s
        self._opened_at = 0.0

    @property
    def closed(self) -> bool:
        """Whether steps may go to the engine now."""
        return self.state is State.CLOSED

    def probe_in(self) -> float | None:
        """Seconds until a probe is due (0 when it is); None unless open."""
        if self.state is not State.OPEN:
            return None
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    # -- what steps report (they count only while closed) -------------------------------

    def succeeded(self) -> Change | None:
        """The engine answered a step (whatever the step's exit code)."""
        if self.state is State.CLOSED:
            self.failures = 0
        return None

    def failed(self, reason: str) -> Change | None:
        """The engine failed a step: it cannot be reached or the session broke."""
        if self.state is not State.CLOSED:
            return None  # a step begun before the circuit opened; the probe decides now
        self.failures += 1
        self.last_error = reason
        if self.failures < self.threshold:
            return None
        return self._open(f"{self.failures} engine failures in a row, the last: {reason}")

    # -- probing ------------------------------------------------------------------------

    def begin_probe(self) -> Change | None:
        """Let one probe through if one is due: open -> half_open. None when no probe may
        start now (closed, already probing, or still cooling down)."""
        if self.state is not State.OPEN or self._clock() < self._opened_at + self.cooldown_s:
            return None
        self.state = State.HALF_OPEN
        self.reason = f"probing the engine after {self.cooldown_s:g}s"
        return Change(self.state, self.reason, self.failures)

    def probe_succeeded(self) -> Change | None:
        if self.state is not State.HALF_OPEN:
            return None
        self.state = State.CLOSED
        self.reason = "the engine answered the probe"
        self.failures = 0
        self.cooldown_s = self.base_cooldown_s
        return Change(self.state, self.reason)

    def probe_failed(self, reason: str) -> Change | None:
        if self.state is not State.HALF_OPEN:
            return None
        self.last_error = reason
        self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
        return self._open(f"probe failed: {reason}")

    def probe_abandoned(self) -> Change | None:
        """The probe was stopped before its verdict (the executor is stopping): open
        again, with the same cooldown."""
        if self.state is not State.HALF_OPEN:
            return None
        return self._open(f"probe abandoned; the engine last failed with: {self.last_error}")

    def _open(self, reason: str) -> Change:
        self.state = State.OPEN
        self.reason = reason
        self._opened_at = self._clock()
        return Change(self.state, reason, self.failures, self.cooldown_s)
