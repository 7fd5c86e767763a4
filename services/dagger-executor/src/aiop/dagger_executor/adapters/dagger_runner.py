"""The Dagger runner: each step as ``with_exec`` in a container from the step's image.

One engine session serves every step of this executor; it is opened on first use, so an
executor whose engine goes away fails its steps with the engine's error instead of dying.
Secrets go in as Dagger secrets (never as plain env). The SDK returns output only once the
exec ends, so output arrives in one piece per stream.
"""

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiop.contracts import StepSpec
from aiop.dagger_executor.adapters.runner import OutputSink, StepResult

DEFAULT_IMAGE = "alpine:3"
WORKDIR = "/work"


class DaggerRunner:
    name = "dagger"

    def __init__(self, default_image: str = DEFAULT_IMAGE) -> None:
        self.default_image = default_image
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> Any:
        import dagger  # imported late: the local runner needs none of it

        async with self._lock:
            if self._client is None:
                self._client = await self._stack.enter_async_context(
                    dagger.Connection(dagger.Config(log_output=None))
                )
        return self._client

    async def run(
        self,
        step: StepSpec,
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        on_output: OutputSink,
    ) -> StepResult:
        import dagger

        try:
            client = await self._connect()
            ctr = client.container().from_(step.image or self.default_image).with_workdir(WORKDIR)
            for key, value in env.items():
                ctr = ctr.with_env_variable(key, value)
            for key, value in secrets.items():
                ctr = ctr.with_secret_variable(key, client.set_secret(key, value))
            done = await ctr.with_exec(list(step.run), expect=dagger.ReturnType.ANY).sync()
            code, out, err = await asyncio.gather(done.exit_code(), done.stdout(), done.stderr())
        except dagger.DaggerError as exc:
            return StepResult(None, f"dagger: {exc}")
        if out:
            await on_output("stdout", out)
        if err:
            await on_output("stderr", err)
        return StepResult(code, None if code == 0 else f"exited with code {code}")

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
