"""Where a workflow goes next: which pool, whether to queue it, whether to resend it."""

from dataclasses import dataclass
from typing import Literal

import msgspec

from aiop.contracts import WorkflowSpec
from aiop.distributor.domain.registry import Executor, Registry

NO_EXECUTOR = "no executor is connected"


class DispatchState(msgspec.Struct, frozen=True, kw_only=True):
    """One workflow's entry in KV aiop_dispatch (key: workflow id)."""

    spec: WorkflowSpec
    attempt: int = 1
    state: Literal["pending", "dispatched"] = "pending"
    principal: str | None = None  # who submitted it, passed on to the executor
    pool: str | None = None
    # The last WorkflowQueued reason published for this attempt, so each is said once.
    reason: str | None = None
    # W3C trace context of the accepted event: requests sent later, from the dispatch
    # loop, continue the workflow's trace instead of starting one of their own.
    trace: dict[str, str] = {}


@dataclass(frozen=True)
class Claim:
    """An executor took attempt ``attempt``; ``seen_at`` is when the distributor learned it."""

    executor_id: str
    seen_at: float


@dataclass(frozen=True)
class Send:
    pool: str
    attempt: int


@dataclass(frozen=True)
class Queue:
    reason: str
    attempt: int


Action = Send | Queue | None


def choose_pool(requires: list[str], live: list[Executor]) -> str | None:
    """The pool whose live executors offering all of ``requires`` have the most free
    workflow slots, then the most free step capacity (the least loaded).

    A pool at zero free slots still qualifies: requests wait in its stream until a slot
    frees, which beats holding the workflow back here. Ties go to the first pool by name.
    """
    need = set(requires)
    free: dict[str, tuple[int, int]] = {}
    for executor in live:
        if need <= executor.capabilities:
            slots, steps = free.get(executor.pool, (0, 0))
            free[executor.pool] = (slots + executor.free_slots, steps + executor.free_steps)
    if not free:
        return None
    return max(sorted(free), key=lambda pool: free[pool])


def queue_reason(requires: list[str], live: list[Executor]) -> str:
    if not live:
        return NO_EXECUTOR
    return f"no live executor offers capabilities [{', '.join(requires)}]"


def claimant_dead(claim: Claim | None, registry: Registry, now: float, grace: float) -> bool:
    """Whether the executor running an attempt is gone. An unclaimed attempt is not lost:
    its request waits in the pool's stream."""
    if claim is None:
        return False
    live = registry.is_live(claim.executor_id, now)
    if live is None:  # never heard from: give it ``grace`` to announce itself
        return now - claim.seen_at > grace
    return not live


def next_action(d: DispatchState, live: list[Executor], dead: bool, settled: bool) -> Action:
    """What to do with one workflow now.

    ``dead``: the claimant of the current attempt is gone. ``settled``: the startup wait
    for heartbeats is over, so an empty registry means no executor rather than not yet.
    """
    if d.state == "dispatched":
        if not (dead and settled):
            return None
        attempt = d.attempt + 1
    else:
        attempt = d.attempt
    pool = choose_pool(d.spec.requires, live)
    if pool is not None:
        return Send(pool, attempt)
    if not settled:
        return None
    reason = queue_reason(d.spec.requires, live)
    if d.state == "pending" and reason == d.reason:
        return None
    return Queue(reason, attempt)


CancelStep = Literal["now", "claim", "wait"]


def cancel_step(d: DispatchState, claim: Claim | None, dead: bool) -> CancelStep:
    """What a cancel request does to a workflow still held here: end it ``now`` when no
    executor runs it (not sent, or its executor is gone), first ``claim`` its attempt
    when the request is out but unclaimed, so that no executor can start it, and
    otherwise ``wait``: the executor that holds it stops it and says so."""
    if d.state == "pending" or dead:
        return "now"
    return "claim" if claim is None else "wait"


def parse_claim_key(key: str) -> tuple[str, int] | None:
    """``<workflow id>.a<attempt>`` -> (workflow id, attempt); None for any other key."""
    workflow_id, _, suffix = key.rpartition(".a")
    if not workflow_id or not suffix.isdigit():
        return None
    return workflow_id, int(suffix)
