"""The executor service: takes requested workflows of its pool, runs them, heartbeats."""

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from typing import Literal

from aiop.contracts import (
    ExecutorHeartbeat,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepRetrying,
    StepSkipped,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRequested,
    WorkflowStarted,
    check_token,
)
from aiop.contracts.subjects import KV_CANCELS, KV_CLAIMS
from aiop.dagger_executor.adapters.isolation import choose
from aiop.dagger_executor.adapters.publisher import RetryingPublisher
from aiop.dagger_executor.adapters.selection import select_runner
from aiop.dagger_executor.domain.naming import executor_id
from aiop.dagger_executor.handlers import Executor, Identity
from aiop.dagger_executor.run import RunContext
from aiop.servicekit import DeliveryPolicy, Service, ServiceSettings


class ExecutorSettings(ServiceSettings):
    pool: str = "default"
    capabilities: list[str] = ["local"]  # "dagger" is added when an engine is reachable
    slots: int = 8
    heartbeat_interval_s: float = 1.0
    work_dir: Path = Path(tempfile.gettempdir()) / "aiop-work"
    runner: Literal["auto", "local", "dagger"] = "auto"
    # Keeping local steps away from the platform (adapters/isolation.py): "auto" does what
    # this host allows and says what that is; "required" refuses to start without any.
    step_isolation: Literal["auto", "required", "off"] = "auto"
    step_bwrap: bool = True  # a private namespace per step, where bubblewrap is installed


def build(settings: ExecutorSettings) -> Service:
    pool = check_token(settings.pool, "pool")
    svc = Service("dagger-executor", settings)
    isolation = choose(settings.step_isolation, settings.step_bwrap)
    runner, _ = select_runner(settings.runner, isolation=isolation)
    me = executor_id(pool, socket.gethostname(), os.getpid())
    caps = sorted({*settings.capabilities, *(["dagger"] if runner.name == "dagger" else [])})
    identity = Identity(me, pool, caps, settings.slots, settings.heartbeat_interval_s)
    ctx = RunContext(me, runner, RetryingPublisher(svc.bus), settings.work_dir)
    executor = Executor(identity, svc.bus, ctx, lambda: svc.js, settings.stream_replicas)

    svc.publishes(
        WorkflowStarted, StepStarted, StepOutputAppended, StepCompleted, StepFailed,
        StepRetrying, StepSkipped, WorkflowCompleted, WorkflowFailed, WorkflowCancelled,
        ExecutorHeartbeat,
    )  # fmt: skip
    svc.uses_bucket(KV_CLAIMS)  # claiming an attempt is creating its key
    svc.uses_bucket(KV_CANCELS)  # watched: cancel requests for the runs it holds
    # Every executor of the pool shares one durable, so each request goes to one of them;
    # max_ack_pending at the slot count keeps one executor from hoarding requests.
    policy = DeliveryPolicy(max_deliver=30, ack_wait_s=30.0, max_ack_pending=settings.slots,
                            nak_delays_s=(0.5, 1.0, 2.0, 5.0))  # fmt: skip
    svc.consume(WorkflowRequested, executor.on_requested, durable=f"executor-{pool}",
                tokens={"pool": pool}, policy=policy)  # fmt: skip
    svc.on_start(executor.start)
    svc.on_stop(executor.stop)
    return svc


def run() -> None:
    asyncio.run(build(ExecutorSettings()).run())
