"""Dispatch decisions without a server: liveness, pool choice, queueing, resends."""

from aiop.contracts import ExecutorHeartbeat, StepSpec, WorkflowSpec
from aiop.distributor.domain.dispatch import (
    NO_EXECUTOR,
    Claim,
    DispatchState,
    Queue,
    Send,
    cancel_step,
    choose_pool,
    claimant_dead,
    next_action,
    parse_claim_key,
    queue_reason,
)
from aiop.distributor.domain.registry import Registry


def hb(executor_id: str, pool: str = "p", caps: tuple[str, ...] = (), slots: int = 2,
       running: int = 0, interval: float = 1.0, capacity: int = 0,
       load: int = 0) -> ExecutorHeartbeat:  # fmt: skip
    return ExecutorHeartbeat(
        executor_id=executor_id,
        pool=pool,
        capabilities=list(caps),
        slots=slots - running,  # as an executor says it: what it can take now
        running=[f"wf{i}" for i in range(running)],
        interval_s=interval,
        capacity=capacity,
        load=load,
    )


def registry(*beats: ExecutorHeartbeat, at: float = 0.0) -> Registry:
    r = Registry()
    for beat in beats:
        r.observe(beat, at)
    return r


def spec(*requires: str) -> WorkflowSpec:
    return WorkflowSpec(name="w", steps=[StepSpec(name="s", run=["true"])], requires=list(requires))


def test_executor_is_live_until_three_intervals_pass() -> None:
    r = registry(hb("e1", interval=1.0))
    assert r.is_live("e1", 2.9)
    assert not r.is_live("e1", 3.1)
    assert r.is_live("unknown", 0.0) is None


def test_observe_reports_new_or_revived_executors_only() -> None:
    r = Registry()
    assert r.observe(hb("e1"), 0.0)
    assert not r.observe(hb("e1"), 1.0)
    assert r.observe(hb("e1"), 10.0)  # was dead, capacity came back


def test_forget_drops_long_dead_executors() -> None:
    r = registry(hb("e1", interval=1.0))
    r.forget(now=100.0, dead_for=50.0)
    assert r.is_live("e1", 100.0) is None


def test_pool_must_offer_every_required_capability() -> None:
    live = registry(hb("e1", "small", ("docker",)), hb("e2", "gpu", ("docker", "gpu"))).live(0)
    assert choose_pool(["docker", "gpu"], live) == "gpu"
    assert choose_pool(["tpu"], live) is None


def test_empty_requires_prefers_pool_with_most_free_slots() -> None:
    live = registry(
        hb("a1", "a", slots=4, running=3),
        hb("b1", "b", slots=2, running=0),
        hb("b2", "b", slots=1, running=1),
    ).live(0)
    assert choose_pool([], live) == "b"


def test_full_pool_still_chosen_and_ties_go_by_name() -> None:
    live = registry(hb("z1", "z", slots=1, running=1), hb("y1", "y", slots=1, running=1)).live(0)
    assert choose_pool([], live) == "y"


def test_dead_executors_offer_nothing() -> None:
    r = registry(hb("e1", "gpu", ("gpu",), interval=1.0))
    assert choose_pool(["gpu"], r.live(5.0)) is None


def test_queue_reasons() -> None:
    assert queue_reason([], []) == NO_EXECUTOR
    live = registry(hb("e1", caps=("docker",))).live(0)
    assert (
        queue_reason(["gpu", "docker"], live)
        == "no live executor offers capabilities [gpu, docker]"
    )


def test_pending_goes_to_capable_pool_even_before_startup_settles() -> None:
    live = registry(hb("e1", "p")).live(0)
    assert next_action(DispatchState(spec=spec()), live, False, settled=False) == Send("p", 1)


def test_pending_waits_quietly_until_startup_settles() -> None:
    assert next_action(DispatchState(spec=spec()), [], False, settled=False) is None
    assert next_action(DispatchState(spec=spec()), [], False, settled=True) == Queue(NO_EXECUTOR, 1)


def test_each_queue_reason_is_published_once() -> None:
    d = DispatchState(spec=spec(), reason=NO_EXECUTOR)
    assert next_action(d, [], False, settled=True) is None
    live = registry(hb("e1", caps=("docker",))).live(0)
    assert next_action(
        DispatchState(spec=spec("gpu"), reason=NO_EXECUTOR), live, False, True
    ) == Queue("no live executor offers capabilities [gpu]", 1)


def test_dispatched_is_resent_only_when_its_claimant_is_dead() -> None:
    d = DispatchState(spec=spec(), state="dispatched", pool="p", attempt=1)
    live = registry(hb("e2", "p")).live(0)
    assert next_action(d, live, dead=False, settled=True) is None
    assert next_action(d, live, dead=True, settled=False) is None
    assert next_action(d, live, dead=True, settled=True) == Send("p", 2)
    assert next_action(d, [], dead=True, settled=True) == Queue(NO_EXECUTOR, 2)


def test_claimant_dead() -> None:
    r = registry(hb("e1", interval=1.0))
    assert not claimant_dead(None, r, 100.0, grace=3.0)
    assert not claimant_dead(Claim("e1", 0.0), r, 1.0, grace=3.0)
    assert claimant_dead(Claim("e1", 0.0), r, 4.0, grace=3.0)
    # An executor never heard from gets the grace period to announce itself.
    assert not claimant_dead(Claim("ghost", 10.0), r, 12.0, grace=3.0)
    assert claimant_dead(Claim("ghost", 10.0), r, 13.5, grace=3.0)


def test_parse_claim_key() -> None:
    assert parse_claim_key("wf-1.a3") == ("wf-1", 3)
    assert parse_claim_key("wfa.a12") == ("wfa", 12)
    assert parse_claim_key("wf-1") is None
    assert parse_claim_key("wf-1.ax") is None


def test_a_cancel_ends_at_once_what_no_executor_runs_and_leaves_the_rest_to_it() -> None:
    pending = DispatchState(spec=spec(), reason=NO_EXECUTOR)
    sent = DispatchState(spec=spec(), state="dispatched", pool="p")
    assert cancel_step(pending, None, dead=False) == "now"
    assert cancel_step(sent, None, dead=False) == "claim"  # out, but no one took it yet
    assert cancel_step(sent, Claim("e1", 0.0), dead=False) == "wait"
    assert cancel_step(sent, Claim("e1", 0.0), dead=True) == "now"


def test_equal_free_slots_go_to_the_pool_with_more_free_step_capacity() -> None:
    live = registry(
        hb("a1", "a", slots=2, capacity=8, load=7),
        hb("b1", "b", slots=2, capacity=8, load=2),
    ).live(0)
    assert choose_pool([], live) == "b"
    busy = registry(hb("a1", "a", slots=3, capacity=8, load=8), hb("b1", "b", slots=2)).live(0)
    assert choose_pool([], busy) == "a"  # free workflow slots come first
