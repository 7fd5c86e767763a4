"""Finding and killing every process a local step started, wherever it went.

Killing the step's process group is not enough: a child may start a session or group of
its own (``setsid``, a daemon's double fork) and so outlive a timeout or cancel. A step's
processes are found in ``/proc`` by what they cannot shed:

- descent from the step's first process, or its session;
- the marker variable in their environment (``AIOP_STEP_RUN``), which children inherit
  even when they leave the process tree (a process could clear it; it rarely does);
- the step's own uid, where it has one: that alone is conclusive.

Scanning ``/proc`` takes a few milliseconds, so it happens only when a step is stopped,
never at its normal end.
"""

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

MARKER = "AIOP_STEP_RUN"
PROC = Path("/proc")
ROUNDS = 5  # a step may fork while it is being killed: scan again until nothing is left


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    session: int
    uid: int


def kill_step(root: int, marker: str, uid: int | None) -> set[int]:
    """SIGKILL every live process of the step whose first process is ``root``, started
    with ``MARKER=marker`` in its environment; returns the pids killed."""
    killed: set[int] = set()
    if root > 0:  # 0: a launched step whose pid never came (its uid still finds it)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root, signal.SIGKILL)  # the common case, before the scan: at once
    if not PROC.is_dir():
        return killed
    for _ in range(ROUNDS):
        found = step_processes(root, marker, uid) - killed - {os.getpid()}
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= found
    return killed


def step_processes(root: int, marker: str, uid: int | None) -> set[int]:
    """The live (not zombie) processes that belong to the step, by the rules above."""
    procs = {p.pid: p for p in _live_processes()}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found = {p.pid for p in procs.values() if p.session == root or p.uid == uid}
    if root in procs:
        found.add(root)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    tag = f"{MARKER}={marker}".encode()
    me = os.getpid()
    for pid in procs.keys() - found - {me}:
        if _environ_has(pid, tag):
            found.add(pid)
    return found


def _live_processes() -> list[Proc]:
    procs = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(entry.path, "stat").read_text()
            # The name, in parentheses, may hold spaces and ")": the fields follow its end.
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] in ("Z", "X"):  # dead, waiting to be reaped: nothing to kill
                continue
            procs.append(Proc(int(entry.name), int(fields[1]), int(fields[3]), entry.stat().st_uid))
    return procs


def _environ_has(pid: int, tag: bytes) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's: not this step's (its uid was checked)
        return False
    return tag in environ.split(b"\0")
