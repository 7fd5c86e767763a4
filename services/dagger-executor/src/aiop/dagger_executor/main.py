"""The executor service: takes requested workflows of its pool, runs them, heartbeats."""

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from typing import Literal

from aiop.contracts import (
    ExecutorCircuitChanged,
    ExecutorHeartbeat,
    StepCached,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepProgress,
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
from aiop.contracts.agents import REPORT, WITHDRAWN, WORK, AgentReport, AgentWork
from aiop.contracts.cache import KV_STEP_CACHE, OBJ_OUTPUTS
from aiop.contracts.endpoints import STEP_TOKEN
from aiop.contracts.subjects import KV_CANCELS, KV_CLAIMS, KV_SECRETS
from aiop.dagger_executor.adapters.agent_desk import AgentDesk
from aiop.dagger_executor.adapters.api_access import ApiAccess
from aiop.dagger_executor.adapters.artifacts import CacheLimits, StepStore
from aiop.dagger_executor.adapters.breaker import CircuitBreaker
from aiop.dagger_executor.adapters.fallback import FallbackRunner, circuit_announcer
from aiop.dagger_executor.adapters.isolation import choose
from aiop.dagger_executor.adapters.publisher import RetryingPublisher
from aiop.dagger_executor.adapters.secret_store import SecretStore
from aiop.dagger_executor.adapters.selection import engine_status, select_runner
from aiop.dagger_executor.domain.naming import executor_id
from aiop.dagger_executor.handlers import Executor, Identity
from aiop.dagger_executor.run import RunContext
from aiop.dagger_executor.step_slots import StepSlots
from aiop.servicekit import DeliveryPolicy, Service, ServiceSettings


class ExecutorSettings(ServiceSettings):
    pool: str = "default"
    capabilities: list[str] = ["local"]  # "dagger" is added when an engine is reachable
    slots: int = 8  # workflows at once
    step_capacity: int = 16  # steps at once, over all its workflows
    labels: list[
        str
    ] = []  # what it offers besides runners, e.g. ["gpu"]: workflows may require them
    heartbeat_interval_s: float = 1.0
    work_dir: Path = Path(tempfile.gettempdir()) / "aiop-work"
    runner: Literal["auto", "local", "dagger"] = "auto"
    # The circuit breaker in front of the Dagger engine (adapters/fallback.py): this many
    # engine failures in a row open it; a probe after the cooldown, doubled after each
    # failed probe up to the maximum, closes it again.
    breaker_failures: int = 3
    breaker_cooldown_s: float = 30.0
    breaker_max_cooldown_s: float = 600.0
    # Keeping local steps away from the platform (adapters/isolation.py): "auto" does what
    # this host allows and says what that is; "required" refuses to start without any.
    step_isolation: Literal["auto", "required", "off"] = "auto"
    step_bwrap: bool = True  # a private namespace per step, where bubblewrap is installed
    # The executors' private key (PEM, 0600), which opens the secrets the gateway sealed
    # to its public key. Without it only AIOP_SECRET_* variables provide secrets.
    secrets_key_file: Path | None = None
    # The step cache, shared by every executor: how long a result is kept, and how many
    # bytes of outputs in all (the oldest go first).
    cache_ttl_s: float = 7 * 24 * 3600.0
    cache_max_bytes: int = 2 * 1024**3
    # The gateway as steps reach it: steps with ``api: true`` get it as AIOP_URL, with a
    # token. Without it such steps fail, saying why.
    gateway_url: str | None = None


def build(settings: ExecutorSettings) -> Service:
    pool = check_token(settings.pool, "pool")
    svc = Service("dagger-executor", settings)
    isolation = choose(settings.step_isolation, settings.step_bwrap)
    me = executor_id(pool, socket.gethostname(), os.getpid())
    publisher = RetryingPublisher(svc.bus)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s,
                             settings.breaker_max_cooldown_s)  # fmt: skip
    runner, check = select_runner(settings.runner, isolation=isolation, breaker=breaker,
                                  announce=circuit_announcer(publisher.publish, me, pool))  # fmt: skip
    runners = ["local", *(["dagger"] if runner.name == "dagger" else [])]
    caps = sorted({*settings.capabilities, *runners, *settings.labels})
    withheld = runner.withheld if isinstance(runner, FallbackRunner) else frozenset
    identity = Identity(me, pool, caps, settings.slots, settings.heartbeat_interval_s, withheld,
                        runners=runners, labels=sorted(settings.labels),
                        engine=engine_status(settings.runner, runner, check))  # fmt: skip
    secret_store = SecretStore(settings.secrets_key_file, settings.stream_replicas)
    steps = StepStore(CacheLimits(settings.cache_ttl_s, settings.cache_max_bytes),
                      settings.stream_replicas)  # fmt: skip
    api = (
        ApiAccess(settings.gateway_url, lambda ask: svc.ask(STEP_TOKEN, ask))
        if settings.gateway_url
        else None
    )
    agents = AgentDesk(lambda: svc.js, svc.send)
    ctx = RunContext(me, runner, publisher, settings.work_dir, lookup=secret_store.lookup,
                     store=steps, slots=StepSlots(settings.step_capacity), api=api,
                     agents=agents)  # fmt: skip
    svc.asks(STEP_TOKEN)  # tokens for steps that call the API
    executor = Executor(identity, svc.bus, ctx, lambda: svc.js, settings.stream_replicas)

    svc.publishes(
        WorkflowStarted, StepStarted, StepOutputAppended, StepCompleted, StepFailed,
        StepRetrying, StepCached, StepSkipped, WorkflowCompleted, WorkflowFailed, WorkflowCancelled,
        ExecutorHeartbeat, ExecutorCircuitChanged, StepProgress,
    )  # fmt: skip
    # Agent steps: offered on the agents' work stream, withdrawn when given up, and
    # their reports read back (adapters/agent_desk.py).
    svc.publishes_to(f"{WORK}.>", AgentWork)
    svc.publishes_to(f"{WITHDRAWN}.>", AgentReport)
    svc.follows_subject(f"{REPORT}.>", AgentReport)
    svc.uses_bucket(KV_CLAIMS)  # claiming an attempt is creating its key
    svc.uses_bucket(KV_CANCELS)  # watched: cancel requests for the runs it holds
    svc.uses_bucket(KV_SECRETS)  # read at each step's start: the secrets it names
    svc.uses_bucket(KV_STEP_CACHE)  # looked up before each step, written after it
    svc.uses_object_store(OBJ_OUTPUTS)  # the steps' outputs
    # Every executor of the pool shares one durable, so each request goes to one of them;
    # max_ack_pending at the slot count keeps one executor from hoarding requests.
    policy = DeliveryPolicy(max_deliver=30, ack_wait_s=30.0, max_ack_pending=settings.slots,
                            nak_delays_s=(0.5, 1.0, 2.0, 5.0))  # fmt: skip
    svc.consume(WorkflowRequested, executor.on_requested, durable=f"executor-{pool}",
                tokens={"pool": pool}, policy=policy)  # fmt: skip
    svc.on_start(lambda: secret_store.open(svc.js))  # before the first request is taken
    svc.on_start(lambda: steps.open(svc.js))
    svc.on_start(executor.start)
    svc.on_stop(executor.stop)
    return svc


def run() -> None:
    asyncio.run(build(ExecutorSettings()).run())
