"""The Dagger runner: each step as ``with_exec`` in a container from the step's image.

How a step's fields map onto the engine (docs/architecture.md, "The Dagger runner"):

- ``image``: ``container().from_(image)``; with ``registry_auth``, first
  ``with_registry_auth(address, username, set_secret(<its secret>))``. That secret's
  value is used for nothing else: it is never a variable of the step;
- the work directory is ``/work`` (``with_workdir``); ``env`` via ``with_env_variable``;
- ``secrets`` via ``with_secret_variable`` (``set_secret``): values never appear in the
  queries that build the container, only in ``setSecret``;
- ``caches``: ``with_mounted_cache(path, cache_volume(name))``, a relative path under
  ``/work``;
- ``inputs``: the executor has already put each needed step's outputs in
  ``<host work dir>/<path>``; that folder is mounted read-only at ``/work/<path>``;
- ``files``: ``with_new_file("/work/<path>", text)`` each (mode 0644); one inside an
  input's folder is not: the executor wrote it there on the host before it was mounted;
- ``$AIOP_SUMMARY`` is ``/work/.aiop-summary.json``; after exit code 0 that file, if the
  step wrote one, is exported to the host work directory, where the executor reads it;
- ``run``: ``with_exec(argv, expect=ANY)``, then its exit code, stdout and stderr;
- ``outputs``: after exit code 0, each one is exported from ``/work/<path>`` to
  ``<host work dir>/<path>``, where the executor packs it: as a directory if it is one in
  the container, else as a file; one the step did not produce is left for the executor
  to report as missing;
- ``timeout`` is the caller's (it cancels ``run``); ``network`` is not enforced: a Dagger
  container always has a network.

One engine session serves every step of this executor. It is opened on first use, and
dropped when the engine fails (it cannot be reached, the session broke), so the next step
or probe opens a new one instead of reusing a dead client. Such failures are raised as
``EngineError`` for the circuit breaker (adapters/fallback.py); what the engine answers,
however bad for the step (no such image, a failed export), is the step's result.

The SDK returns output only once the exec ends, so output arrives in one piece per stream.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from aiop.contracts import StepSpec
from aiop.dagger_executor.adapters.runner import OutputSink, StepResult
from aiop.dagger_executor.domain.summary import SUMMARY_FILE

log = logging.getLogger("aiop.dagger_executor.dagger")

DEFAULT_IMAGE = "alpine:3"
WORKDIR = "/work"


class EngineError(Exception):
    """The Dagger engine could not be reached or lost the session: not the step's doing."""


def in_container(path: str) -> str:
    """Where a step's path is in its container: relative ones are under ``/work``."""
    return path if path.startswith("/") else f"{WORKDIR}/{path}"


def engine_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the engine is unavailable, rather than that it answered."""
    import dagger
    import httpx

    if isinstance(exc, dagger.QueryError | dagger.InvalidQueryError):
        return False  # the engine answered (or the query was ours to get right)
    return isinstance(exc, dagger.DaggerError | OSError | httpx.HTTPError | TimeoutError)


class DaggerRunner:
    name = "dagger"

    def __init__(self, default_image: str = DEFAULT_IMAGE) -> None:
        self.default_image = default_image
        # The session: its client and the stack that closes it; None until first use and
        # after the engine failed.
        self._session: tuple[Any, contextlib.AsyncExitStack] | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def _connect(self) -> tuple[Any, contextlib.AsyncExitStack]:
        import dagger  # imported late: the local runner needs none of it

        async with self._lock:
            if self._session is not None:
                return self._session
            _use_cli_on_path()
            stack = contextlib.AsyncExitStack()
            try:
                # No retries inside the SDK: an engine that refuses connections fails
                # at once, and the circuit breaker decides when to try again.
                config = dagger.Config(log_output=None, retry=None)
                client = await stack.enter_async_context(dagger.Connection(config))
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await stack.aclose()
                if isinstance(exc, Exception) and engine_failure(exc):
                    raise EngineError(_describe(exc)) from exc
                raise
            self._session = (client, stack)
            log.info("connected to the Dagger engine")
            return self._session

    def _lost(self, session: tuple[Any, contextlib.AsyncExitStack]) -> None:
        """Forget ``session`` (unless a newer one replaced it) and close it meanwhile."""
        if self._session is session:
            self._session = None
            task = asyncio.create_task(_close_quietly(session[1]))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def ping(self) -> None:
        """Raise EngineError unless the engine answers (a fresh session if need be)."""
        session = await self._connect()
        try:
            await session[0].version()
        except Exception as exc:
            if not engine_failure(exc):
                return  # it answered, if with an error
            self._lost(session)
            raise EngineError(_describe(exc)) from exc

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult:
        import dagger

        session = await self._connect()
        try:
            return await self._run(session[0], step, workdir, env, secrets, on_output)
        except (dagger.QueryError, dagger.InvalidQueryError) as exc:
            return StepResult(None, f"dagger: {exc}", runner=self.name)
        except Exception as exc:
            if not engine_failure(exc):
                raise
            self._lost(session)
            raise EngineError(_describe(exc)) from exc

    async def _run(
        self,
        client: Any,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult:
        import dagger

        auth = step.registry_auth
        if auth is not None and auth.secret not in secrets:
            return StepResult(
                None,
                f"registry_auth names secret {auth.secret!r}, which the step was not given",
                runner=self.name,
            )
        ctr = self._container(client, step, workdir, env, secrets)
        try:
            done = await ctr.with_exec(list(step.run), expect=dagger.ReturnType.ANY).sync()
            code, out, err = await asyncio.gather(done.exit_code(), done.stdout(), done.stderr())
        except dagger.ExecError as exc:  # an exit ANY does not cover (killed by a signal)
            done, code, out, err = None, exc.exit_code, exc.stdout, exc.stderr
        if out:
            await on_output("stdout", out)
        if err:
            await on_output("stderr", err)
        if code != 0 or done is None:
            return StepResult(code, f"exited with code {code}", runner=self.name)
        try:
            await _export_summary(done, workdir)
        except dagger.QueryError as exc:  # a summary lost is no failure of the step
            await on_output("stderr", f"[dagger runner] its summary could not be exported: {exc}\n")
        for path in step.outputs:
            try:
                await _export(done, path, _host_path(workdir, path))
            except dagger.QueryError as exc:
                return StepResult(0, f"output {path!r} could not be exported: {exc}",
                                  runner=self.name)  # fmt: skip
        return StepResult(0, runner=self.name)

    def _container(
        self,
        client: Any,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
    ) -> Any:
        """The step's container, ready for its exec (built lazily: no query yet)."""
        ctr = client.container()
        if (auth := step.registry_auth) is not None:
            secret = client.set_secret(_secret_name(auth.secret), secrets[auth.secret])
            ctr = ctr.with_registry_auth(auth.address, auth.username, secret)
        ctr = ctr.from_(step.image or self.default_image).with_workdir(WORKDIR)
        # The executor's host path for the summary means nothing in the container.
        env = {**env, "AIOP_SUMMARY": in_container(SUMMARY_FILE)}
        for key, value in env.items():
            ctr = ctr.with_env_variable(key, value)
        for key, value in secrets.items():
            if auth is not None and key == auth.secret and key not in step.secrets:
                continue  # the registry's password, for the pull only
            ctr = ctr.with_secret_variable(key, client.set_secret(_secret_name(key), value))
        for name, path in step.caches.items():
            ctr = ctr.with_mounted_cache(in_container(path), client.cache_volume(name))
        for path in step.inputs.values():
            source = client.host().directory(str((workdir / path).absolute()), no_cache=True)
            ctr = ctr.with_mounted_directory(in_container(path), source, read_only=True)
        for path, text in step.files.items():
            if not any(PurePosixPath(path).is_relative_to(at) for at in step.inputs.values()):
                ctr = ctr.with_new_file(in_container(path), text)
        return ctr

    async def close(self) -> None:
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await _close_quietly(session[1])
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _export(done: Any, path: str, host: str) -> None:
    """Copy output ``path`` from the container to ``host``: a directory as a directory,
    anything else as a file; nothing when the step did not produce it."""
    import dagger

    inside = in_container(path)
    if await done.exists(inside, expected_type=dagger.ExistsType.DIRECTORY_TYPE):
        await done.directory(inside).export(host)
    elif await done.exists(inside):
        await done.file(inside).export(host)


async def _export_summary(done: Any, workdir: Path) -> None:
    """Copy the step's summary file, if it wrote one, to the host work directory."""
    import dagger

    inside = in_container(SUMMARY_FILE)
    if await done.exists(inside, expected_type=dagger.ExistsType.REGULAR_TYPE):
        await done.file(inside).export(_host_path(workdir, SUMMARY_FILE))


def _host_path(workdir: Path, path: str) -> str:
    """Where output ``path`` goes on the host (its folder made): absolute, since the
    engine's idea of the current directory is not this process's."""
    host = (workdir / path).absolute()
    host.parent.mkdir(parents=True, exist_ok=True)
    return str(host)


def _secret_name(name: str) -> str:
    """A name of its own for each value set: steps of different projects may hold
    different values under one name, in the one session they share."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def _use_cli_on_path() -> None:
    """Provision the engine with the `dagger` CLI on PATH (the one engine detection found)
    rather than let the SDK download one; a session from DAGGER_SESSION_PORT needs none."""
    if os.environ.get("DAGGER_SESSION_PORT") or os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN"):
        return
    if cli := shutil.which("dagger"):
        os.environ["_EXPERIMENTAL_DAGGER_CLI_BIN"] = cli


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text or type(exc).__name__


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    try:
        await stack.aclose()
    except Exception as exc:  # a broken session may not close cleanly; it is gone anyway
        log.debug("closing the Dagger session: %r", exc)
