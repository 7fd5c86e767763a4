"""The state tables: every state has a rank, and the orders the folds rely on hold."""

from typing import get_args

from aiop.contracts.states import (
    FINAL_STEP_STATES,
    STEP_RANK,
    TERMINAL_WORKFLOW_STATES,
    WORKFLOW_RANK,
    StepState,
    WorkflowState,
)


def test_every_state_has_a_rank() -> None:
    assert set(get_args(WorkflowState)) <= set(WORKFLOW_RANK)
    assert set(get_args(StepState)) == set(STEP_RANK)
    assert TERMINAL_WORKFLOW_STATES.issubset(get_args(WorkflowState))
    assert set(get_args(StepState)) - FINAL_STEP_STATES == {"pending", "running"}


def test_requested_ranks_between_queued_and_running_and_ends_rank_last() -> None:
    rank = WORKFLOW_RANK
    assert rank["submitted"] < rank["accepted"] < rank["queued"] < rank["requested"]
    assert rank["requested"] < rank["running"]
    assert {rank[s] for s in TERMINAL_WORKFLOW_STATES} == {max(rank.values())}
    assert STEP_RANK["pending"] < STEP_RANK["running"]
    assert {STEP_RANK[s] for s in FINAL_STEP_STATES} == {max(STEP_RANK.values())}
