"""Names the executor puts on the bus: its own id and claim keys."""

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def executor_id(pool: str, hostname: str, pid: int) -> str:
    """``<pool>-<hostname>-<pid>``, safe as a subject token (a hostname may hold dots)."""
    return _UNSAFE.sub("-", f"{pool}-{hostname}-{pid}")[-128:]


def claim_key(workflow_id: str, attempt: int) -> str:
    """The KV key whose creation claims one attempt of a workflow."""
    return f"{workflow_id}.a{attempt}"
