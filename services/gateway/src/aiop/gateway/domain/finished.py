"""Status answers of workflows that can no longer change, kept to answer GETs locally.

A workflow whose state is terminal, with every step's final event folded in by both
task-manager and reporter, has a final status body. Polling clients ask for exactly
these, and each fresh answer costs a query to task-manager and one to reporter (about
4 of the 5 ms of CPU a GET costs the platform, docs/performance.md).
"""

from collections import OrderedDict

from aiop.contracts.queries import WorkflowReport, WorkflowView
from aiop.contracts.states import FINAL_STEP_STATES, TERMINAL_WORKFLOW_STATES


def is_final(view: WorkflowView, report: WorkflowReport | None) -> bool:
    if view.state not in TERMINAL_WORKFLOW_STATES:
        return False
    if view.state == "rejected":
        return True
    if any(step.state not in FINAL_STEP_STATES for step in view.steps):
        return False
    if report is None or report.outcome != view.state:
        return False
    folded = report.steps_succeeded + report.steps_failed + report.steps_skipped
    return folded == report.steps_total == len(view.steps)


class FinishedWorkflows:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def get(self, workflow_id: str) -> tuple[str, bytes] | None:
        """(project, status body) if ``workflow_id`` finished, else None."""
        found = self._bodies.get(workflow_id)
        if found is not None:
            self._bodies.move_to_end(workflow_id)
        return found

    def keep(self, workflow_id: str, project: str, body: bytes) -> None:
        self._bodies[workflow_id] = (project, body)
        self._bodies.move_to_end(workflow_id)
        if len(self._bodies) > self.capacity:
            self._bodies.popitem(last=False)

    def forget(self, workflow_id: str) -> None:
        """The run was removed: answer for it no more."""
        self._bodies.pop(workflow_id, None)
