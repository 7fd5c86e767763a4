"""Workflows this gateway accepted a moment ago, which task-manager may not know yet.

A client that GETs right after its POST must see "submitted", not 404, while the event is
still on its way to task-manager.
"""

import time
from collections import OrderedDict

from aiop.contracts.queries import WorkflowView


class RecentSubmissions:
    def __init__(self, ttl_s: float = 300.0, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # workflow id -> (expires, name, project, body digest of a keyed submission)
        self._entries: OrderedDict[str, tuple[float, str, str, str | None]] = OrderedDict()

    def add(
        self,
        workflow_id: str,
        name: str,
        project: str,
        now: float | None = None,
        digest: str | None = None,
    ) -> None:
        now = time.monotonic() if now is None else now
        self._entries[workflow_id] = (now + self.ttl_s, name, project, digest)
        self._entries.move_to_end(workflow_id)
        # Oldest first: drop what has expired, and the oldest beyond the size bound.
        while self._entries:
            oldest, (expires, *_) = next(iter(self._entries.items()))
            if expires > now and len(self._entries) <= self.max_entries:
                break
            del self._entries[oldest]

    def view(self, workflow_id: str, now: float | None = None) -> WorkflowView | None:
        entry = self._entries.get(workflow_id)
        now = time.monotonic() if now is None else now
        if entry is None or entry[0] <= now:
            return None
        return WorkflowView(
            workflow_id=workflow_id, name=entry[1], project=entry[2], state="submitted",
            steps=[], body_digest=entry[3],
        )  # fmt: skip

    def forget(self, workflow_id: str) -> None:
        """The run was removed: it is not "just submitted" either."""
        self._entries.pop(workflow_id, None)
