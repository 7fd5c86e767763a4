"""Live tails per caller: refused past the limit, each slot given back once."""

from aiop.gateway.domain.tails import TailSlots


def test_a_caller_past_the_limit_is_refused_until_a_slot_is_given_back() -> None:
    slots = TailSlots(most=2)
    first, second = slots.take("ann"), slots.take("ann")
    assert first is not None
    assert second is not None
    assert slots.take("ann") is None
    assert slots.take("bob") is not None  # a limit per caller
    first()
    first()  # given back twice (the tail's end, then its finalizer): counted once
    assert slots.open("ann") == 1
    assert slots.take("ann") is not None
    assert slots.take("ann") is None
