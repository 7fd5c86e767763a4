"""Thin handlers: messages -> domain fold -> KV; query -> KV -> WorkflowReport."""

import asyncio

import msgspec
from nats.aio.msg import Msg

from aiop.contracts.envelope import decode_event, event_type_of
from aiop.contracts.events import Event
from aiop.contracts.queries import WorkflowQuery
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.reporter.adapters.advisories import record_advisory
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.domain import ReportState, fold, to_report
from aiop.servicekit import Delivery, EventBus, Outcomes, Permanent
from aiop.servicekit.rpc import QueryFailed

_query = msgspec.json.Decoder(WorkflowQuery)


def _decode(raw: Msg) -> tuple[Event, str]:
    """The event in ``raw`` and its workflow id, checked because it becomes the KV key."""
    event_type = event_type_of(raw.subject, dict(raw.headers or {}))
    if event_type is None:
        raise Permanent(f"no known event type for {raw.subject}")
    event = decode_event(raw.data, event_type)  # UndecodableEvent -> dead letter
    workflow_id = getattr(event, "workflow_id", None)
    try:
        check_token(workflow_id or "", "workflow id")
    except InvalidToken as exc:
        raise Permanent(str(exc)) from exc
    return event, workflow_id  # type: ignore[return-value]


def _fold_all(state: ReportState | None, events: list[tuple[int, Event]]) -> ReportState:
    for _, event in events:
        state = fold(state, event)
    assert state is not None  # at least one event, and fold always returns a state
    return state


class Reporter:
    def __init__(self, store: ReportStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def on_events(self, batch: list[Delivery]) -> Outcomes:
        """Fold a fetch of workflow and step events into their workflows' summaries: one
        KV write per workflow per fetch, the workflows written concurrently."""
        outcomes: Outcomes = [None] * len(batch)
        by_workflow: dict[str, list[tuple[int, Event]]] = {}
        for i, one in enumerate(batch):
            try:
                event, workflow_id = _decode(one.msg)
            except Exception as exc:
                outcomes[i] = exc
                continue
            by_workflow.setdefault(workflow_id, []).append((i, event))

        async def write(workflow_id: str, events: list[tuple[int, Event]]) -> None:
            try:
                await self.store.change(workflow_id, lambda state: _fold_all(state, events))
            except Exception as exc:  # these events are retried; the other workflows' stand
                for i, _ in events:
                    outcomes[i] = exc

        await asyncio.gather(*(write(w, events) for w, events in by_workflow.items()))
        return outcomes

    async def get_report(self, data: bytes) -> bytes:
        """``aiop.query.report.get.v1``: WorkflowQuery -> WorkflowReport, 404 if unknown."""
        query = _query.decode(data)
        try:
            check_token(query.workflow_id, "workflow id")
        except InvalidToken as exc:
            raise QueryFailed(400, str(exc)) from exc
        state, _ = await self.store.get(query.workflow_id)
        if state is None:
            raise QueryFailed(404, f"no report for workflow {query.workflow_id}")
        return msgspec.json.encode(to_report(state))

    async def on_advisory(self, raw: Msg) -> None:
        await record_advisory(self.bus.broker.connection.jetstream(), self.bus, raw.data)
