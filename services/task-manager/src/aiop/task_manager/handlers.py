"""Thin handlers: decode the event, fold it in the domain, store the effect with its inbox
row in one transaction, then publish what the transaction wrote to the outbox."""

import logging

import asyncpg
import msgspec
from nats.aio.msg import Msg
from opentelemetry import trace

from aiop.contracts.envelope import decode_event, event_type_of
from aiop.contracts.events import (
    WorkflowAccepted,
    WorkflowEvent,
    WorkflowRejected,
    WorkflowSubmitted,
)
from aiop.contracts.queries import WorkflowQuery
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.servicekit import Permanent
from aiop.servicekit.rpc import QueryFailed
from aiop.task_manager.adapters import outbox, store
from aiop.task_manager.domain import Applied, Illegal, fold, new_workflow

log = logging.getLogger("aiop.task_manager")


class Handlers:
    """The service's handlers; ``pool`` and ``outbox`` are set at startup, before any
    consumer runs."""

    pool: asyncpg.Pool
    outbox: outbox.Outbox

    async def on_submitted(self, msg: Msg) -> None:
        event = decode_event(msg.data, WorkflowSubmitted)
        try:
            check_token(event.workflow_id, "workflow id")
        except InvalidToken as exc:  # no subject could carry an answer about it
            raise Permanent(str(exc)) from exc
        wf, problems = new_workflow(event)
        answer = (
            WorkflowRejected(workflow_id=wf.id, reasons=problems)
            if problems
            else WorkflowAccepted(workflow_id=wf.id, spec=event.spec)
        )
        row = outbox.outbox_row(answer)
        async with self.pool.acquire() as conn:
            claimed, created = await store.accept(
                conn, _consumer(msg), event.event_id, wf, event.spec, _trace_id(), row
            )
        if not claimed:
            return
        if not created:
            log.warning("workflow %s submitted again; the first submission stands", wf.id)
            return
        await self.outbox.publish_now([row])

    async def on_event(self, msg: Msg) -> None:
        """Any other workflow or step event: fold it onto the stored workflow."""
        kind = event_type_of(msg.subject, dict(msg.headers or {}))
        if kind is None or not issubclass(kind, WorkflowEvent):
            raise Permanent(f"task-manager does not handle {msg.subject}")
        event = decode_event(msg.data, kind)
        async with self.pool.acquire() as conn, conn.transaction():
            claimed, wf = await store.claim_and_load(
                conn, _consumer(msg), event.event_id, event.workflow_id
            )
            if not claimed:
                return
            if wf is None:
                log.warning("%s for unknown workflow %s: ignored", kind.TYPE, event.workflow_id)
                return
            outcome = fold(wf, event)
            if isinstance(outcome, Applied):
                await store.save(conn, wf, outcome.workflow)
            elif isinstance(outcome, Illegal):
                log.warning("illegal %s on %s: %s", kind.TYPE, wf.id, outcome.reason)
            else:
                log.debug("%s on %s ignored: %s", kind.TYPE, wf.id, outcome.reason)

    async def get_workflow(self, data: bytes) -> bytes:
        query = msgspec.json.decode(data, type=WorkflowQuery)
        async with self.pool.acquire() as conn:
            view = await store.view(conn, query.workflow_id)
        if view is None:
            raise QueryFailed(404, f"workflow {query.workflow_id} not found")
        return msgspec.json.encode(view)


def _consumer(msg: Msg) -> str:
    """The inbox key: the durable consumer that delivered ``msg``."""
    return msg.metadata.consumer or "unknown"


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None
