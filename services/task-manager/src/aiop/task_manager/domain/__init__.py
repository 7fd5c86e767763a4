"""task-manager's pure logic: the workflow and step state machine. No I/O here."""

from aiop.task_manager.domain.state import (
    Applied,
    Ignored,
    Illegal,
    Outcome,
    Step,
    Workflow,
    fold,
    new_workflow,
)

__all__ = [
    "Applied",
    "Ignored",
    "Illegal",
    "Outcome",
    "Step",
    "Workflow",
    "fold",
    "new_workflow",
]
