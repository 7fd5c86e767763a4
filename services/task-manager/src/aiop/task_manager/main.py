"""task-manager: folds workflow events into PostgreSQL and answers workflow queries."""

import asyncio

from aiop.contracts import endpoints as ep
from aiop.contracts import events as ev
from aiop.contracts.endpoints import (
    GET_RUN_SOURCE,
    GET_WORKFLOW,
    LIST_WORKFLOWS,
)
from aiop.contracts.subjects import KV_TEMPLATES
from aiop.servicekit import DeliveryPolicy, Service, ServiceSettings
from aiop.servicekit.kv import open_bucket
from aiop.task_manager.handlers import Handlers
from aiop.task_manager.projects import ProjectAnswers
from aiop.task_manager.scheduler import Scheduler
from aiop.task_manager.schedules import ScheduleEndpoints
from aiop.task_manager.triggers import Triggers

# Each fetch is folded in one transaction; the workflow row locks order it against the
# submissions consumer and other task-manager replicas.
POLICY = DeliveryPolicy(max_ack_pending=1024)
# Every event task-manager folds, on one consumer, so one fetch holds a workflow's events
# in stream order and they share its transaction.
FOLDED: list[type[ev.WorkflowEvent]] = [
    ev.WorkflowQueued, ev.WorkflowRequested, ev.WorkflowStarted, ev.WorkflowCompleted,
    ev.WorkflowFailed, ev.WorkflowCancelled, ev.StepStarted, ev.StepCompleted, ev.StepFailed,
    ev.StepRetrying, ev.StepCached, ev.StepSkipped,
]  # fmt: skip


class TaskManagerSettings(ServiceSettings):
    database_url: str  # AIOP_DATABASE_URL
    outbox_interval_s: float = 1.0  # between relay passes
    outbox_grace_s: float = 1.0  # the relay leaves a new row this long to the fast path
    # Apply missing migrations at start. Off where the service's role may not (aiop up
    # migrates as the superuser first, and connects the service as a role of its own).
    migrate_on_start: bool = True


def build(settings: TaskManagerSettings) -> Service:
    svc = Service("task-manager", settings)
    h = Handlers(
        settings.database_url, svc.bus, settings.outbox_interval_s, settings.outbox_grace_s,
        migrating=settings.migrate_on_start,
    )  # fmt: skip
    # Accepted and rejected answer submissions; WorkflowSubmitted is what triggers,
    # schedules and tasks start (submissions.py).
    svc.publishes(ev.WorkflowAccepted, ev.WorkflowRejected, ev.WorkflowSubmitted)
    svc.uses_bucket(KV_TEMPLATES)  # templates, rendered for triggers, schedules and tasks
    # The submission's answer is on the way to the executor: no lingering here.
    svc.consume_batch(ev.WorkflowSubmitted, h.on_submitted, durable="task-manager-submitted",
                      policy=POLICY, batch_size=128)  # fmt: skip
    # Folding is off the critical path: lingering 20 ms between short fetches shares one
    # transaction among more events.
    svc.consume_batch(FOLDED, h.on_event, durable="task-manager-events", policy=POLICY,
                      batch_size=128, linger_s=0.02)  # fmt: skip
    svc.answer(GET_WORKFLOW, h.get_workflow)
    svc.answer(LIST_WORKFLOWS, h.list_workflows)
    svc.answer(ep.WORKFLOW_STATS, h.stats)
    svc.answer(GET_RUN_SOURCE, h.run_source)
    svc.answer(ep.PRUNE_WORKFLOWS, h.prune)
    projects = ProjectAnswers(lambda: h.pool)
    svc.answer(ep.CREATE_PROJECT, projects.create)
    svc.answer(ep.LIST_PROJECTS, projects.list)
    svc.answer(ep.GET_PROJECT, projects.get)
    svc.answer(ep.ARCHIVE_PROJECT, projects.archive)
    svc.answer(ep.SAVE_TASK, projects.save_task)
    svc.answer(ep.GET_TASK, projects.get_task)
    svc.answer(ep.LIST_TASKS, projects.list_tasks)
    svc.answer(ep.DELETE_TASK, projects.delete_task)
    svc.on_start(h.open)  # the pool and the outbox relay, before any event

    async def open_templates() -> None:
        h.templates = await open_bucket(svc.js, KV_TEMPLATES, replicas=settings.stream_replicas)

    svc.on_start(open_templates)
    svc.on_stop(h.close)
    scheduler = Scheduler(h)  # fires schedules' ticks, each once across replicas
    ScheduleEndpoints(h, scheduler).register(svc)
    Triggers(h).register(svc)  # external events under ext.>, and the trigger endpoints
    svc.on_start(scheduler.start)  # once the pool and the templates bucket are open
    svc.on_stop(scheduler.stop)  # stop hooks run in reverse: before the pool closes
    return svc


def run() -> None:
    asyncio.run(build(TaskManagerSettings()).run())  # type: ignore[call-arg]
