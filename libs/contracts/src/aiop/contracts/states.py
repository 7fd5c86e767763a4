"""The states of workflows and steps, and the order they move in.

Events arrive duplicated and late, so task-manager and reporter each keep a state only
when an event moves it *forward* by ``(attempt, rank)``; they read the ranks from here so
that both agree on what forward means, and everyone agrees on what has ended.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

WorkflowState = Literal[
    "submitted",
    "accepted",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "rejected",
]
StepState = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cached", "cancelled", "timed_out"
]

TERMINAL_WORKFLOW_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "cancelled", "timed_out", "rejected"}
)
FINAL_STEP_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "skipped", "cached", "cancelled", "timed_out"}
)

# Within one attempt. "requested" is not a state of its own (the workflow is still queued,
# now at a pool), but it ranks above queued so that a late "no executor" reason cannot
# overwrite the fact that it was sent. Terminal states share the top rank: the first wins.
WORKFLOW_RANK: Mapping[str, int] = MappingProxyType(
    {
        "submitted": 0,
        "accepted": 1,
        "queued": 2,
        "requested": 3,
        "running": 4,
        **dict.fromkeys(TERMINAL_WORKFLOW_STATES, 5),
    }
)
# Final states share the top rank too: within one attempt a step's first end wins.
STEP_RANK: Mapping[str, int] = MappingProxyType(
    {"pending": 0, "running": 1, **dict.fromkeys(FINAL_STEP_STATES, 2)}
)
