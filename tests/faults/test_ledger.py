"""The ledger's verdicts on resumed attempts, without a platform."""

from tests.faults.ledger import Ledger


def ledger(effects: list[tuple[str, int]], done: list[tuple[str, int]],
           resumed: dict[tuple[str, int], int]) -> Ledger:  # fmt: skip
    book = Ledger("unit", {"wf": "succeeded"})
    book.terminal["wf"]["end"] = ("succeeded", 2)
    book.views["wf"] = book.rows["wf"] = "succeeded"
    for step, attempt in effects:
        book.effects[("wf", step, attempt)] += 1
    for step, attempt in done:
        book.step_done[("wf", step, attempt)].add(f"{step}{attempt}")
    book.resumed = {("wf", s, a): earlier for (s, a), earlier in resumed.items()}
    return book


def test_a_step_resumed_from_the_attempt_that_did_it_is_right() -> None:
    book = ledger([("a", 1), ("b", 2)], [("a", 1), ("b", 2)], {("a", 2): 1})
    assert book.outcome("wf") == "succeeded"


def test_a_step_run_again_after_it_completed_is_a_duplicate() -> None:
    book = ledger([("a", 1), ("a", 2), ("b", 2)], [("a", 1), ("a", 2), ("b", 2)], {})
    assert book.outcome("wf") == "duplicated"


def test_a_step_started_but_never_completed_may_run_again() -> None:
    book = ledger([("a", 1), ("a", 2), ("b", 2)], [("a", 2), ("b", 2)], {})
    assert book.outcome("wf") == "succeeded"


def test_a_resumed_step_without_an_effect_behind_it_is_wrong() -> None:
    book = ledger([("b", 2)], [("b", 2)], {("a", 2): 1})
    assert book.outcome("wf") == "wrong"
