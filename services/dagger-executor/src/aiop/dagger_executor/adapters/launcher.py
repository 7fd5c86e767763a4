"""The executor's side of the step launcher (``launcher_main.py``).

``StepLauncher.spawn`` starts a step under a uid of its own and returns a process much
like asyncio's: its pid, its output streams and ``wait()``. The launcher process is
started on first use and again after it has stopped; steps it was running when it
stopped end with an error saying so, and their retries start them anew.
"""

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from aiop.dagger_executor.adapters import launcher_main

LINE_LIMIT = 64 * 1024
STOPPED = "the step launcher stopped while the step ran"


class LaunchedStep:
    """A step the launcher started: what LocalRunner needs of an asyncio Process."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader

    def __init__(self) -> None:
        self.pipes: list[asyncio.BaseTransport] = []
        self.pid = 0  # known once the launcher has answered; 0 while not (or never)
        self.returncode: int | None = None
        self.error: str | None = None  # the program could not be started
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[int] = loop.create_future()
        self._ended: asyncio.Future[int] = loop.create_future()

    async def started(self) -> int:
        """The step's pid, once the launcher has handed it over (0: it never was)."""
        return await asyncio.shield(self._started)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    def handed_over(self, pid: int) -> None:
        if not self._started.done():
            self.pid = pid
            self._started.set_result(pid)

    def ended(self, code: int, error: str | None) -> None:
        self.handed_over(0)  # an answer for whoever waits for the pid, if none came
        if not self._ended.done():
            self.returncode, self.error = code, error
            self._ended.set_result(code)

    def lost(self) -> None:
        """The launcher stopped: nobody can tell when the step ends, so its output ends
        here (its processes may hold the pipes open); the runner kills what is left."""
        self.ended(-1, STOPPED)
        for pipe in self.pipes:
            pipe.close()


class StepLauncher:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._steps: dict[int, LaunchedStep] = {}

    async def spawn(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], uid: int, umask: int
    ) -> LaunchedStep:
        """Start ``argv``; returns without waiting for the launcher's answer (the pid
        comes while the step's output is read)."""
        sock = await self._running()
        step_id = next(self._ids)
        request = {"id": step_id, "argv": argv, "env": dict(env), "cwd": str(cwd),
                   "uid": uid, "umask": umask}  # fmt: skip
        # Known before it is sent: the answers may come before this coroutine resumes.
        step = self._steps[step_id] = LaunchedStep()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            await _send(sock, json.dumps(request).encode(), [null, out_w, err_w])
        except OSError:
            self._stopped()
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        # What the step writes meanwhile waits in the pipes.
        (step.stdout, out_pipe), (step.stderr, err_pipe) = (
            await _reader(out_r),
            await _reader(err_r),
        )
        step.pipes += [out_pipe, err_pipe]
        if step.error == STOPPED:  # lost before its pipes were read
            step.lost()
        return step

    @property
    def pid(self) -> int | None:
        """The launcher process's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._sock is not None else None

    @property
    def running(self) -> int:
        """How many of the steps it started have been handed over and not ended."""
        return sum(1 for step in self._steps.values() if step.pid)

    async def close(self) -> None:
        if self._sock is not None:
            self._forget(self._sock)  # the launcher ends when it sees this end close
        if self._proc is not None:
            proc, self._proc = self._proc, None
            await asyncio.to_thread(proc.wait)

    async def _running(self) -> socket.socket:
        async with self._starting:
            if self._sock is None:
                mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                with theirs:
                    # Not an asyncio child: it outlives no loop, it ends with its socket.
                    self._proc = subprocess.Popen(  # noqa: ASYNC220 - once; our own file
                        [sys.executable, "-I", "-S", launcher_main.__file__, str(theirs.fileno())],
                        pass_fds=[theirs.fileno()],
                        env={},  # none of the executor's variables, secrets least of all
                        stdin=subprocess.DEVNULL,
                    )
                mine.setblocking(False)
                asyncio.get_running_loop().add_reader(mine, self._receive, mine)
                self._sock = mine
            return self._sock

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._forget(sock)
                self._stopped()
                return
            message = json.loads(data)
            step = self._steps.get(message["id"])
            if step is None:
                continue
            if "pid" in message:
                step.handed_over(message["pid"])
            else:
                del self._steps[message["id"]]
                step.ended(message["exit"], message.get("error"))

    def _forget(self, sock: socket.socket) -> None:
        asyncio.get_running_loop().remove_reader(sock)
        sock.close()
        if self._sock is sock:
            self._sock = None

    def _stopped(self) -> None:
        """The launcher is gone: nothing it ran can be waited for any more."""
        for step in self._steps.values():
            step.lost()
        self._steps.clear()


async def _send(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """One packet, waiting while the socket's buffer is full (many large requests)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [data], fds)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(sock)


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
    pipe, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader, pipe
