"""Which executors are alive, from their heartbeats.

Heartbeats travel on core NATS and are never stored, so the registry is memory only: a
restarted distributor relearns it within one heartbeat interval.
"""

from dataclasses import dataclass

from aiop.contracts import ExecutorHeartbeat

# An executor is live until MISSED_BEATS of its own intervals pass without a heartbeat:
# one lost heartbeat (or a slow one) must not cost a resend. The gateway's fleet table
# (GET /v1/executors) calls an executor stale by the same rule.
from aiop.contracts.events import MISSED_BEATS


@dataclass(frozen=True)
class Executor:
    executor_id: str
    pool: str
    capabilities: frozenset[str]
    slots: int  # workflows it can take now (the executor counts its running ones out)
    running: int
    interval_s: float
    last_seen: float
    capacity: int = 0  # steps at once
    load: int = 0  # steps running

    def is_live(self, now: float) -> bool:
        return now - self.last_seen <= MISSED_BEATS * self.interval_s

    @property
    def free_slots(self) -> int:
        return max(self.slots, 0)

    @property
    def free_steps(self) -> int:
        return max(self.capacity - self.load, 0)


class Registry:
    def __init__(self) -> None:
        self._executors: dict[str, Executor] = {}

    def observe(self, hb: ExecutorHeartbeat, now: float) -> bool:
        """Record ``hb``; True when the executor is new or was dead, i.e. capacity appeared."""
        before = self._executors.get(hb.executor_id)
        self._executors[hb.executor_id] = Executor(
            executor_id=hb.executor_id,
            pool=hb.pool,
            capabilities=frozenset(hb.capabilities),
            slots=hb.slots,
            running=len(hb.running),
            interval_s=hb.interval_s,
            last_seen=now,
            capacity=hb.capacity,
            load=hb.load,
        )
        return before is None or not before.is_live(now)

    def is_live(self, executor_id: str, now: float) -> bool | None:
        """None for an executor never heard from (it may not have announced itself yet)."""
        executor = self._executors.get(executor_id)
        return None if executor is None else executor.is_live(now)

    def live(self, now: float) -> list[Executor]:
        return [e for e in self._executors.values() if e.is_live(now)]

    def forget(self, now: float, dead_for: float) -> None:
        """Drop executors silent for ``dead_for`` seconds beyond their liveness window."""
        self._executors = {
            k: e
            for k, e in self._executors.items()
            if now - e.last_seen <= MISSED_BEATS * e.interval_s + dead_for
        }
