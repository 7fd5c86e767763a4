"""The executor fleet as its heartbeats tell it (``GET /v1/executors``, and the step cache
counters of ``GET /v1/stats/cache``).

Heartbeats travel on core NATS, to every gateway replica, and are never stored: the table
is memory only, relearnt within one heartbeat interval after a restart. An executor is
stale by the distributor's rule (``ExecutorHeartbeat.is_live``), and dropped once silent
for ``forget_after_s``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from aiop.contracts.events import ExecutorCircuitChanged, ExecutorHeartbeat, now

FORGET_AFTER_S = 300.0
# The breaker's state as the API spells it (the events say "half_open").
CIRCUIT_STATES = {"closed": "closed", "open": "open", "half_open": "half-open"}


class EngineView(msgspec.Struct, frozen=True, kw_only=True):
    reachable: bool | None  # True it answers, False it fails or is missing, None unknown
    detail: str


class ExecutorView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    pool: str
    capabilities: list[str]  # offered now: a runner whose circuit is open is left out
    runners: list[str]
    labels: list[str]
    slots: int  # workflows it can take now
    capacity: int  # steps at once
    load: int  # steps running
    running: int  # workflows it runs (never their ids: they may be any project's)
    last_heartbeat: datetime  # when this gateway heard it
    age_s: float
    stale: bool  # silent for longer than its missed-heartbeat allowance
    circuits: dict[str, str]  # runner -> "closed" | "open" | "half-open"
    engine: EngineView


class ExecutorList(msgspec.Struct, frozen=True, kw_only=True):
    executors: list[ExecutorView]


@dataclass(frozen=True)
class CacheUse:
    """The step cache counters of the executors in the table, summed."""

    hits: int = 0
    misses: int = 0
    outputs_gone: int = 0
    since: datetime | None = None  # when the longest-running of them started counting
    executors: int = 0  # how many executors' counters these are


@dataclass
class _Heard:
    beat: ExecutorHeartbeat
    at: float  # monotonic, for ages
    wall: datetime  # the same instant, to show
    circuits: dict[str, str] = field(default_factory=dict)


class Fleet:
    def __init__(
        self, forget_after_s: float = FORGET_AFTER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.forget_after_s = forget_after_s
        self._clock = clock
        self._heard: dict[str, _Heard] = {}

    def observe(self, beat: ExecutorHeartbeat) -> None:
        t = self._clock()
        self._heard[beat.executor_id] = _Heard(beat, t, now(), dict(beat.circuits))
        self._forget(t)

    def circuit_changed(self, event: ExecutorCircuitChanged) -> None:
        """A breaker's change, shown before the next heartbeat confirms it. Only the Dagger
        runner has a breaker (the event's ``runner`` is the one steps get from now on)."""
        if (heard := self._heard.get(event.executor_id)) is not None:
            heard.circuits["dagger"] = event.state

    def executors(self) -> ExecutorList:
        t = self._clock()
        self._forget(t)
        heard = sorted(self._heard.values(), key=lambda h: (h.beat.pool, h.beat.executor_id))
        return ExecutorList(executors=[_view(h, t) for h in heard])

    def cache_use(self) -> CacheUse:
        self._forget(self._clock())
        beats = [h.beat for h in self._heard.values()]
        starts = [b.started_at for b in beats if b.started_at is not None]
        return CacheUse(
            hits=sum(b.cache_hits for b in beats), misses=sum(b.cache_misses for b in beats),
            outputs_gone=sum(b.cache_outputs_gone for b in beats),
            since=min(starts) if starts else None, executors=len(beats),
        )  # fmt: skip

    def _forget(self, t: float) -> None:
        gone = [k for k, h in self._heard.items() if t - h.at > self.forget_after_s]
        for key in gone:
            del self._heard[key]


def _view(heard: _Heard, t: float) -> ExecutorView:
    beat, age = heard.beat, max(t - heard.at, 0.0)
    return ExecutorView(
        id=beat.executor_id, pool=beat.pool, capabilities=beat.capabilities,
        runners=beat.runners, labels=beat.labels, slots=beat.slots, capacity=beat.capacity,
        load=beat.load, running=len(beat.running), last_heartbeat=heard.wall,
        age_s=round(age, 3), stale=not beat.is_live(age),
        circuits={r: CIRCUIT_STATES.get(s, s) for r, s in heard.circuits.items()},
        engine=EngineView(reachable=beat.engine_reachable, detail=beat.engine_detail),
    )  # fmt: skip


def window_s(since: datetime | None) -> float | None:
    """Seconds from ``since`` to now: how far back the summed counters reach."""
    return None if since is None else round((now() - since) / timedelta(seconds=1), 3)
