"""Thin handlers: fold the events in the domain, store the effect with its inbox row in
one transaction, then publish what the transaction wrote to the outbox."""

import contextlib
import logging

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from opentelemetry import trace

from aiop.contracts.events import (
    WorkflowAccepted,
    WorkflowEvent,
    WorkflowRejected,
    WorkflowSubmitted,
)
from aiop.contracts.queries import (
    Pruned,
    PruneRequest,
    RunSource,
    WorkflowListQuery,
    WorkflowPage,
    WorkflowQuery,
    WorkflowView,
)
from aiop.contracts.stats import StatsQuery, WorkflowStats
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.contracts.workflow import WorkflowSpec
from aiop.servicekit import Delivery, EventBus, Outcomes, Permanent
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.adapters import outbox, store
from aiop.task_manager.adapters.db import open_pool
from aiop.task_manager.adapters.outbox import OutboxRow
from aiop.task_manager.adapters.stats import run_stats
from aiop.task_manager.domain import Applied, Illegal, Workflow, fold, new_workflow

log = logging.getLogger("aiop.task_manager")


class Handlers:
    """The service's handlers; the pool and outbox open at start (``open``), before any
    consumer runs. Each takes a whole fetch and stores it in one transaction: under load
    that is one commit for many events instead of one each."""

    pool: asyncpg.Pool
    outbox: outbox.Outbox
    templates: KeyValue  # KV aiop_templates, opened at start

    def __init__(
        self,
        database_url: str,
        bus: EventBus,
        outbox_interval_s: float,
        outbox_grace_s: float,
        *,
        migrating: bool = True,
    ) -> None:
        self.database_url = database_url
        self.migrating = migrating
        self.bus = bus
        self.outbox_interval_s = outbox_interval_s
        self.outbox_grace_s = outbox_grace_s

    async def open(self) -> None:
        self.pool = await open_pool(self.database_url, migrating=self.migrating)
        self.outbox = outbox.Outbox(
            self.pool, self.bus, interval=self.outbox_interval_s, grace=self.outbox_grace_s
        )
        self.outbox.start()

    async def close(self) -> None:
        await self.outbox.stop()
        await self.pool.close()

    async def on_submitted(self, batch: list[Delivery[WorkflowSubmitted]]) -> Outcomes:
        outcomes: Outcomes = [None] * len(batch)
        decided: list[tuple[WorkflowSubmitted, Workflow, OutboxRow, str | None]] = []
        for i, one in enumerate(batch):
            try:
                with one.active():  # the answer continues the submission's trace
                    decided.append(_decide(one.event))
            except Exception as exc:
                outcomes[i] = exc
        if not decided:
            return outcomes
        consumer = _consumer(batch[0].msg)
        fresh: list[OutboxRow] = []
        async with self.pool.acquire() as conn:
            # One submission is one atomic statement; several share one commit.
            together = conn.transaction() if len(decided) > 1 else contextlib.nullcontext()
            async with together:
                for event, wf, row, trace_id in decided:
                    try:
                        claimed, created = await store.accept(
                            conn, consumer, event, wf, trace_id, row
                        )
                    except asyncpg.DataError as exc:
                        if len(decided) > 1:
                            raise  # the batch is split: alone, this submission lands below
                        event, wf, row = _unstorable(event, wf, row, exc)
                        claimed, created = await store.accept(
                            conn, consumer, event, wf, trace_id, row
                        )
                    if claimed and not created:
                        log.warning("workflow %s submitted again; the first stands", wf.id)
                    elif created:
                        fresh.append(row)
        await self.outbox.publish_now(fresh)
        return outcomes

    async def on_event(self, batch: list[Delivery[WorkflowEvent]]) -> Outcomes:
        """Any other workflow or step events: fold them onto their stored workflows."""
        outcomes: Outcomes = [None] * len(batch)
        events = [one.event for one in batch]
        async with self.pool.acquire() as conn, conn.transaction():
            claimed, stored = await store.claim_and_lock(
                conn,
                _consumer(batch[0].msg),
                [e.event_id for e in events],
                sorted({e.workflow_id for e in events}),
            )
            folded = dict(stored)
            for event in events:
                if event.event_id not in claimed:
                    continue  # handled before, or twice in this batch
                claimed.discard(event.event_id)
                _fold_onto(folded, event)
            changes = [(stored[i], folded[i]) for i in stored if folded[i] is not stored[i]]
            if changes:
                await store.save(conn, changes)
        return outcomes

    async def list_workflows(self, query: WorkflowListQuery) -> WorkflowPage:
        try:
            async with self.pool.acquire() as conn:
                return await store.listing(conn, query)
        except store.BadCursor as exc:
            raise QueryFailed(400, str(exc)) from exc

    async def stats(self, query: StatsQuery) -> WorkflowStats:
        async with self.pool.acquire() as conn:
            return await run_stats(conn, query)

    async def prune(self, ask: PruneRequest) -> Pruned:
        async with self.pool.acquire() as conn:
            return Pruned(workflow_ids=await store.prune(conn, ask))

    async def run_source(self, query: WorkflowQuery) -> RunSource:
        async with self.pool.acquire() as conn:
            found = await store.source(conn, query.workflow_id)
        if found is None:
            raise QueryFailed(404, f"workflow {query.workflow_id} not found")
        return found

    async def get_workflow(self, query: WorkflowQuery) -> WorkflowView:
        async with self.pool.acquire() as conn:
            view = await store.view(conn, query.workflow_id)
        if view is None:
            raise QueryFailed(404, f"workflow {query.workflow_id} not found")
        return view


def _decide(event: WorkflowSubmitted) -> tuple[WorkflowSubmitted, Workflow, OutboxRow, str | None]:
    """A submission's workflow and the answer to it: accepted, or rejected with reasons."""
    try:
        check_token(event.workflow_id, "workflow id")
    except InvalidToken as exc:  # no subject could carry an answer about it
        raise Permanent(str(exc)) from exc
    wf, problems = new_workflow(event)
    answer = (
        WorkflowRejected(workflow_id=wf.id, reasons=problems)
        if problems
        else WorkflowAccepted(workflow_id=wf.id, spec=event.spec, principal=event.principal)
    )
    return event, wf, outbox.outbox_row(answer), _trace_id()


def _fold_onto(workflows: dict[str, Workflow], event: WorkflowEvent) -> None:
    """Fold ``event`` onto its workflow in ``workflows``, replacing it if it moved."""
    wf = workflows.get(event.workflow_id)
    if wf is None:
        log.warning("%s for unknown workflow %s: ignored", event.TYPE, event.workflow_id)
        return
    outcome = fold(wf, event)
    if isinstance(outcome, Applied):
        workflows[wf.id] = outcome.workflow
    elif isinstance(outcome, Illegal):
        log.warning("illegal %s on %s: %s", event.TYPE, wf.id, outcome.reason)
    else:
        log.debug("%s on %s ignored: %s", event.TYPE, wf.id, outcome.reason)


def _unstorable(
    event: WorkflowSubmitted, wf: Workflow, row: OutboxRow, exc: Exception
) -> tuple[WorkflowSubmitted, Workflow, OutboxRow]:
    """A submission PostgreSQL refuses to store (a character it cannot keep, say): kept
    as rejected, with its name and project only, so that the client sees why rather than
    a workflow that was accepted and then never heard of. A rejection keeps its reasons."""
    spec = WorkflowSpec(name=event.spec.name, project=event.spec.project, steps=[])
    bare = msgspec.structs.replace(event, spec=spec, parameters={})
    if wf.state == "rejected":
        return bare, wf, row
    reason = f"the workflow cannot be stored: {type(exc).__name__}: {exc}"
    answer = WorkflowRejected(workflow_id=event.workflow_id, reasons=[reason])
    return bare, Workflow(event.workflow_id, "rejected", reason=reason), outbox.outbox_row(answer)


def _consumer(msg: Msg) -> str:
    """The inbox key: the durable consumer that delivered ``msg``."""
    return msg.metadata.consumer or "unknown"


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None
