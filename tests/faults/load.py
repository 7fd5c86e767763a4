"""Submissions at a fixed rate through the gateway, each retried until it is accepted.

Each submission carries its own Idempotency-Key, so a retry after a 503 or a lost reply
names the same workflow and JetStream drops a second copy: a workflow is counted as
accepted once, when the gateway first answers 202.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.harness import Platform

# Gateway answers that mean "try again": the platform is (partly) away.
RETRY = {502, 503, 504}


def effect(effects: Path, step: str, then: str = "") -> list[str]:
    """A step whose effect is one line appended to ``effects``, after a pause in which a
    fault can land; ``then`` runs after the effect (e.g. ``exit 3``)."""
    line = f'echo "$AIOP_WORKFLOW_ID {step} $AIOP_ATTEMPT" >> {effects}'
    return ["sh", "-c", f"sleep 0.2; {line}; {then or 'true'}"]


def spec(n: int, effects: Path, fails: bool) -> dict[str, Any]:
    """Two steps, the second after the first; a failing one's second step exits 3."""
    return {
        "name": f"load{n}",
        "steps": [
            # Effects outside the platform: never reused from the step cache.
            {"name": "a", "run": effect(effects, "a"), "cache": False},
            {
                "name": "b",
                "run": effect(effects, "b", "exit 3" if fails else ""),
                "needs": ["a"],
                "cache": False,
            },
        ],
    }


@dataclass
class Load:
    platform: Platform
    rate: float  # submissions per second
    fail_every: int = 5  # every n-th workflow is meant to fail
    # A submission still refused after this long counts as refused: longer than any
    # outage a scenario causes, so normally none is.
    give_up_s: float = 300.0
    accepted: dict[str, str] = field(default_factory=dict)  # workflow id -> expected state
    refused: int = 0
    retries: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop submitting; wait until every submission is accepted or given up."""
        self._stop.set()
        if self._runner is not None:
            await self._runner
        await asyncio.gather(*self._tasks)

    async def run_for(self, seconds: float) -> None:
        self.start()
        await asyncio.sleep(seconds)
        await self.stop()

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.platform.token}"}
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            base_url=self.platform.gateway_url, headers=headers, timeout=10, limits=limits
        ) as http:
            began, n = time.monotonic(), 0
            while not self._stop.is_set():
                self._tasks.append(asyncio.create_task(self._submit(http, n)))
                n += 1
                # A fixed schedule, not "after the last answer": a slow gateway must not
                # slow the load down.
                delay = began + n / self.rate - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
            await asyncio.gather(*self._tasks)

    async def _submit(self, http: httpx.AsyncClient, n: int) -> None:
        fails = n % self.fail_every == self.fail_every - 1
        body = spec(n, self.platform.effects, fails)
        key = {"Idempotency-Key": f"{self.platform.root.name}-{n}"}
        deadline = time.monotonic() + self.give_up_s
        while True:
            try:
                reply = await http.post("/v1/workflows", json=body, headers=key)
                if reply.status_code == 202:
                    self.accepted[reply.json()["workflow_id"]] = "failed" if fails else "succeeded"
                    return
                if reply.status_code not in RETRY:
                    raise AssertionError(f"submission {n}: {reply.status_code} {reply.text}")
            except httpx.TransportError:
                pass  # gateway restarting or its reply lost: the same key makes retrying safe
            if time.monotonic() > deadline:
                self.refused += 1
                return
            self.retries += 1
            await asyncio.sleep(0.25)
