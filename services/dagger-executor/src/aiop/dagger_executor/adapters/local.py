"""The local runner: each step as a host subprocess in its own work directory.

The step's image is recorded, not pulled, and the first output line says so. The argv is
executed directly (no shell), kept away from the platform and from other steps as far as
this host allows (``isolation``). The process gets a small environment, not the
executor's own: that holds every AIOP_SECRET_* value, and a step may only see the
secrets it names.
"""

import asyncio
import contextlib
import dataclasses
import os
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path

from aiop.contracts import StepSpec
from aiop.dagger_executor.adapters.isolation import Isolation, hand_back, prepare_workdir
from aiop.dagger_executor.adapters.launcher import LINE_LIMIT, STOPPED, LaunchedStep, StepLauncher
from aiop.dagger_executor.adapters.reaper import MARKER, kill_step
from aiop.dagger_executor.adapters.runner import OutputSink, StepResult

# Host variables a program commonly needs to start at all.
PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
# A step under a uid of its own gets the system's search path, not the services': theirs
# may lead into directories that uid cannot enter (a virtualenv under /root, say). A step
# that wants another sets PATH in its env.
STEP_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LocalRunner:
    name = "local"

    def __init__(self, isolation: Isolation | None = None, cache_root: Path | None = None) -> None:
        self.isolation = isolation or Isolation(separate_uids=False)
        self.cache_root = cache_root  # None: beside the executor's work directory
        self.launcher = StepLauncher()  # starts steps under uids of their own

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult:
        async with self.isolation.step_uid() as uid:
            # A local mkdir takes microseconds; a worker-thread hop would cost more.
            prepare_workdir(workdir, uid)
            try:
                result = await self._run(step, workdir, env, secrets, on_output, uid)
                return dataclasses.replace(result, runner=self.name)
            finally:
                if uid is not None:
                    hand_back(workdir)

    async def _run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
        uid: int | None,
    ) -> StepResult:
        if step.image:
            await on_output("stderr", f"[local runner] image {step.image} recorded, not pulled\n")
        full_env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
        if uid is not None:
            full_env["PATH"] = STEP_PATH
        marker = uuid.uuid4().hex  # finds the step's processes that leave its group
        # Every secret it was given but a registry password, which is for pulling its
        # image (the step's own secrets and, for ``api: true``, its API token).
        auth = step.registry_auth
        named = {k: v for k, v in secrets.items()
                 if auth is None or k != auth.secret or k in step.secrets}  # fmt: skip
        full_env |= {"HOME": str(workdir), "TMPDIR": str(workdir), **env, **named}
        full_env[MARKER] = marker
        caches = self._caches(step, workdir, full_env)
        argv = self.isolation.command(step.run, workdir, step.network, caches)
        # Steps under uids of their own share cache volumes: what one writes there the next
        # (another uid) must be able to change. Its work directory stays its own (0700)
        # whatever the umask.
        umask = 0 if step.caches and uid is not None else -1
        proc: asyncio.subprocess.Process | LaunchedStep
        try:
            if uid is not None:
                proc = await self.launcher.spawn(argv, workdir, full_env, uid, umask)
            else:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=workdir,
                    env=full_env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # its own process group: a kill reaches children
                    limit=LINE_LIMIT,
                )
        except FileNotFoundError:
            return StepResult(None, f"cannot start {step.run[0]!r}: no such executable")
        except PermissionError:
            return StepResult(None, f"cannot start {step.run[0]!r}: permission denied")
        except OSError as exc:
            return StepResult(None, f"cannot start {step.run[0]!r}: {exc}")
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            await asyncio.gather(
                _pump(proc.stdout, "stdout", on_output), _pump(proc.stderr, "stderr", on_output)
            )
            code = await proc.wait()
        except BaseException:  # a timeout or a cancel: the whole tree goes, wherever it went
            pid = await proc.started() if isinstance(proc, LaunchedStep) else proc.pid
            await asyncio.shield(asyncio.to_thread(kill_step, pid, marker, uid))
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(proc.wait())
            raise
        if isinstance(proc, LaunchedStep) and proc.error == STOPPED:
            # Its launcher is gone, and with it the step's exit: whatever of it still runs
            # must not run on unobserved.
            await asyncio.to_thread(kill_step, proc.pid, marker, uid)
        elif uid is not None:
            _kill_group(proc.pid)  # nothing the step left behind keeps running under its uid
        if isinstance(proc, LaunchedStep) and proc.error is not None:
            return StepResult(None, proc.error)
        if code < 0:
            return StepResult(code, f"killed by signal {_signal_name(-code)}")
        return StepResult(code, None if code == 0 else f"exited with code {code}")

    async def close(self) -> None:
        await self.launcher.close()

    def _caches(self, step: StepSpec, workdir: Path, env: dict[str, str]) -> list[Path]:
        """The step's cache volumes: one lasting folder per name, shared by every step that
        names it. A relative path becomes a link in the work directory; a host process
        cannot mount at an absolute one, so that is given as ``AIOP_CACHE_<NAME>``."""
        folders: list[Path] = []
        if not step.caches:
            return folders
        root = self.cache_root or _beside_work_dir(workdir)
        for name, path in step.caches.items():
            folder = root / name
            if not folder.is_dir():
                root.mkdir(parents=True, exist_ok=True)
                root.chmod(0o711)  # passable, not listable
                folder.mkdir(exist_ok=True)
                folder.chmod(0o777)  # steps under uids of their own share it
            env[f"AIOP_CACHE_{name.upper().replace('-', '_')}"] = str(folder)
            if not path.startswith("/"):
                link = workdir / path
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink():
                    link.symlink_to(folder, target_is_directory=True)
            folders.append(folder)
        return folders


async def _pump(stream: asyncio.StreamReader, name: str, on_output: OutputSink) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over LINE_LIMIT: pass on what is buffered
            line = await stream.read(LINE_LIMIT)
        if not line:
            return
        await on_output(name, line.decode(errors="replace"))


def _kill_group(pid: int) -> None:
    if pid <= 0:  # never started: 0 would be the executor's own group
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _beside_work_dir(workdir: Path) -> Path:
    """``<work dir>-caches``: an executor's step directories are
    ``<work dir>/<workflow>/<attempt>/<step>``."""
    parents = workdir.parents
    work = parents[2] if len(parents) > 3 else workdir.parent
    return work.with_name(work.name + "-caches")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
