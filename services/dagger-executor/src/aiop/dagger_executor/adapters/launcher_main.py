"""The step launcher: a small process that starts local steps under uids of their own.

Run by the executor (``adapters/launcher.py``) as ``python -I -S launcher_main.py FD``,
where FD is its end of a SOCK_SEQPACKET socket pair; it uses only the standard library.

Why a process of its own: Python changes a child's uid only by forking the whole caller
(vfork is unsafe then), which costs milliseconds in a process as large as the executor,
and running the step through ``setpriv`` costs another exec. The launcher starts a step
with ``posix_spawn`` (vfork and exec) with POSIX_SPAWN_RESETIDS: it sets its own *real*
uid and gid to the step's for the moment of the spawn, the child's effective ids are reset
to them, and exec makes the saved ids the same, so the step holds no trace of root. The
launcher can do this only because it is single-threaded: an id change applies to a whole
process.

Messages, one per packet, JSON:

- executor -> launcher: ``{"id", "argv", "env", "cwd", "uid", "umask"}`` with the step's
  stdin, stdout and stderr passed as descriptors;
- launcher -> executor: ``{"id", "pid"}`` once the step runs, then ``{"id", "exit"}`` when
  it has ended (``exit`` as ``returncode``: negative for a signal), or ``{"id", "exit",
  "error"}`` when it could not be started at all.

The launcher ends when the executor's end closes. Running steps are not its to stop: the
executor kills them itself.
"""

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

MAX_PACKET = 1 << 20  # the largest request: a step's argv and env
# Signals the launcher ignores or handles, which its steps must not inherit.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)


def spawn(step: dict[str, Any], fds: list[int]) -> int:
    """Start ``step`` with ``fds`` as its stdin, stdout and stderr; returns its pid."""
    argv: list[str] = step["argv"]
    env: dict[str, str] = step["env"]
    uid: int = step["uid"]
    umask: int = step["umask"]
    # posix_spawnp searches the caller's PATH, not the step's.
    os.environ["PATH"] = env.get("PATH", os.defpath)
    os.chdir(step["cwd"])  # there is no spawn attribute for a directory; the child inherits it
    before = os.umask(umask) if umask >= 0 else None
    os.setresgid(uid, 0, 0)
    os.setresuid(uid, 0, 0)
    try:
        return os.posix_spawnp(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)],
            resetids=True,
            setsid=True,  # its own session and group, so a kill reaches its children
            setsigdef=DEFAULT_SIGNALS,
            setsigmask=(),
        )
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)
        if before is not None:
            os.umask(before)
        os.chdir("/")


def cannot_start(program: object, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"cannot start {program!r}: no such executable"
    if isinstance(exc, PermissionError):
        return f"cannot start {program!r}: permission denied"
    return f"cannot start {program!r}: {exc.strerror or exc}"


class Launcher:
    def __init__(self, executor: socket.socket) -> None:
        self.executor = executor
        self.selector = selectors.DefaultSelector()
        self.selector.register(executor, selectors.EVENT_READ)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.executor:
                    if not self._request():
                        return
                else:
                    self._ended(*key.data)

    def _request(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.executor, MAX_PACKET, 3)
        except ConnectionError:
            data, fds = b"", []
        if not data:
            return False  # the executor is gone
        step = json.loads(data)
        for fd in fds:  # received descriptors are inheritable: only their dup2 copies are
            os.set_inheritable(fd, False)
        try:
            pid = spawn(step, fds)
        except OSError as exc:
            self._send({"id": step["id"], "exit": 127, "error": cannot_start(step["argv"][0], exc)})
            return True
        finally:
            for fd in fds:
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, (step["id"], pid, pidfd))
        self._send({"id": step["id"], "pid": pid})
        return True

    def _ended(self, step_id: int, pid: int, pidfd: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._send({"id": step_id, "exit": os.waitstatus_to_exitcode(status)})

    def _send(self, message: dict[str, object]) -> None:
        self.executor.send(json.dumps(message).encode())


def main() -> None:
    executor = socket.socket(fileno=int(sys.argv[1]))
    executor.set_inheritable(False)  # passed to us inheritable; a step must not hold it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the executor's Ctrl-C is its to handle
    os.setgroups([])  # steps inherit the launcher's supplementary groups: none
    os.chdir("/")
    with contextlib.suppress(BrokenPipeError):  # the executor is gone
        Launcher(executor).serve()


if __name__ == "__main__":
    main()
