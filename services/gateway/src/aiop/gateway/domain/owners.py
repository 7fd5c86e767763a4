"""Which project a workflow belongs to, remembered: it never changes, and a tail or a
page of dead letters asks for the same few workflows again and again.

A workflow task-manager does not know (yet, or any more) is remembered as unknown for a
few seconds only: a submission may be on its way, and a tail of junk must not ask
task-manager once per message.
"""

import time
from collections import OrderedDict


class WorkflowOwners:
    def __init__(self, capacity: int = 10_000, unknown_for_s: float = 5.0) -> None:
        self.capacity = capacity
        self.unknown_for_s = unknown_for_s
        self._projects: OrderedDict[str, str] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # workflow id -> when asked

    def learn(self, workflow_id: str, project: str) -> None:
        self._projects[workflow_id] = project
        self._projects.move_to_end(workflow_id)
        self._unknown.pop(workflow_id, None)
        while len(self._projects) > self.capacity:
            self._projects.popitem(last=False)

    def project(self, workflow_id: str) -> str | None:
        found = self._projects.get(workflow_id)
        if found is not None:
            self._projects.move_to_end(workflow_id)
        return found

    def missing(self, workflow_id: str) -> None:
        """Task-manager knows no such workflow: don't ask again for a while."""
        self._unknown[workflow_id] = time.monotonic()
        self._unknown.move_to_end(workflow_id)
        while len(self._unknown) > self.capacity:
            self._unknown.popitem(last=False)

    def recently_missing(self, workflow_id: str) -> bool:
        asked = self._unknown.get(workflow_id)
        return asked is not None and time.monotonic() - asked < self.unknown_for_s
