"""External events and triggers: each event is recorded, matched against its project's
triggers, and the runs it starts are written to the outbox, all in one transaction (ADR
0012). A repeated event finds its record and starts nothing; an event no trigger takes
is kept all the same; an event of an archived project starts nothing and its record says
so, for each trigger that took it."""

import logging

import asyncpg
from nats.aio.msg import Msg

from aiop.contracts.endpoints import (
    DELETE_TRIGGER,
    GET_TRIGGER,
    LIST_EVENTS,
    LIST_TRIGGERS,
    SAVE_TRIGGER,
)
from aiop.contracts.events import Origin
from aiop.contracts.triggers import (
    EXT_EVENTS,
    MAX_LIMIT,
    CloudEvent,
    EventPage,
    EventsQuery,
    Trigger,
    TriggerList,
    TriggerRef,
    TriggerRun,
    TriggerSaved,
    TriggersQuery,
    check_trigger,
)
from aiop.servicekit import DeliveryPolicy, Permanent, Service
from aiop.servicekit.cloudevents import NotACloudEvent, read_cloudevent
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.adapters import Conn, projects
from aiop.task_manager.adapters import triggers as store
from aiop.task_manager.adapters.outbox import OutboxRow
from aiop.task_manager.domain.triggers import MissingPart, matches, parameters_for
from aiop.task_manager.handlers import Handlers
from aiop.task_manager.submissions import (
    CannotRender,
    check_active,
    rendered,
    run_id,
    submission,
    task_rendered,
)

log = logging.getLogger("aiop.task_manager.triggers")

POLICY = DeliveryPolicy(max_ack_pending=256)


def read_event(msg: Msg) -> CloudEvent:
    """The CloudEvent a message under ``ext.>`` carries, structured or in ``ce-*``
    headers; anything else is dead-lettered with the reason."""
    try:
        return read_cloudevent(msg.headers or {}, msg.data)
    except NotACloudEvent as exc:
        raise Permanent(str(exc)) from None


class Triggers:
    """The ``ext.>`` consumer and the trigger endpoints, on the service's pool, outbox
    and template bucket (``Handlers``, opened at start)."""

    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers

    def register(self, svc: Service) -> None:
        # A durable consumer of its own: an event's transaction takes a few statements and
        # template reads, so a few run at once; the row key orders two deliveries of one.
        svc.consume_messages(EXT_EVENTS, CloudEvent, read_event, self.on_external,
                             durable="task-manager-external", policy=POLICY, workers=8)  # fmt: skip
        svc.answer(SAVE_TRIGGER, self.save)
        svc.answer(GET_TRIGGER, self.get)
        svc.answer(LIST_TRIGGERS, self.list)
        svc.answer(DELETE_TRIGGER, self.delete)
        svc.answer(LIST_EVENTS, self.events)

    async def on_external(self, event: CloudEvent) -> None:
        rows: list[OutboxRow] = []
        try:
            async with self.h.pool.acquire() as conn, conn.transaction():
                if not await store.record(conn, event):
                    log.info("event %s from %s seen before: nothing started", event.id,
                             event.source)  # fmt: skip
                    return
                runs = []
                for trigger in await store.listed(conn, event.project, enabled_only=True):
                    if matches(trigger, event):
                        run, row = await self.start(conn, trigger, event)
                        runs.append(run)
                        rows += [row] if row is not None else []
                await store.queue(conn, rows)
                await store.set_runs(conn, event, runs)
        except asyncpg.DataError as exc:  # a NUL in its data, say: no retry stores it
            raise Permanent(f"the event cannot be stored: {exc}") from exc
        await self.h.outbox.publish_now(rows)

    async def start(
        self, conn: Conn, trigger: Trigger, event: CloudEvent
    ) -> tuple[TriggerRun, OutboxRow | None]:
        """What ``trigger``'s target (a template, or a task of the project) makes of
        ``event``: the submission of its run, or why there is none (the project archived,
        say). The one place a target becomes a workflow."""
        target = trigger.target
        try:
            parameters = parameters_for(trigger, event)
            if target.task is not None:
                spec, ref, filled = await task_rendered(
                    conn, self.h.templates, event.project, target.task, parameters
                )
            else:
                assert target.template is not None
                await check_active(conn, event.project)
                spec, ref, filled = await rendered(
                    self.h.templates, event.project, target.template, parameters
                )
        except (CannotRender, MissingPart) as exc:
            return TriggerRun(trigger=trigger.name, reason=str(exc)), None
        workflow_id = run_id(event.project, trigger.name, event.source, event.id)
        origin = Origin(
            kind="trigger", trigger=trigger.name, event_id=event.id, event_source=event.source
        )
        row = submission(
            spec, workflow_id=workflow_id, principal=trigger.created_by or "trigger",
            origin=origin, template=ref, parameters=filled, task=target.task,
        )  # fmt: skip
        return TriggerRun(trigger=trigger.name, workflow_id=workflow_id), row

    # -- endpoints -----------------------------------------------------------------------

    async def save(self, trigger: Trigger) -> TriggerSaved:
        problems = check_trigger(trigger)
        if problems:
            raise QueryFailed(422, "; ".join(problems))
        task = trigger.target.task
        async with self.h.pool.acquire() as conn:
            if task is not None and await projects.get_task(conn, trigger.project, task) is None:
                raise QueryFailed(422, f"no task {task} in project {trigger.project}")
            stored, created = await store.save(conn, trigger, trigger.created_by or "unknown")
        return TriggerSaved(trigger=stored, created=created)

    async def get(self, ref: TriggerRef) -> Trigger:
        async with self.h.pool.acquire() as conn:
            found = await store.find(conn, ref.project, ref.name)
        if found is None:
            raise QueryFailed(404, f"no trigger {ref.name} in project {ref.project}")
        return found

    async def list(self, query: TriggersQuery) -> TriggerList:
        async with self.h.pool.acquire() as conn:
            return TriggerList(
                project=query.project, triggers=await store.listed(conn, query.project)
            )

    async def delete(self, ref: TriggerRef) -> Trigger:
        async with self.h.pool.acquire() as conn:
            gone = await store.delete(conn, ref.project, ref.name)
        if gone is None:
            raise QueryFailed(404, f"no trigger {ref.name} in project {ref.project}")
        return gone

    async def events(self, query: EventsQuery) -> EventPage:
        limit = min(max(query.limit, 1), MAX_LIMIT)
        try:
            async with self.h.pool.acquire() as conn:
                return await store.events(conn, query, limit)
        except store.BadCursor as exc:
            raise QueryFailed(400, str(exc)) from None
