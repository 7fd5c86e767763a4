"""Thin handlers: message -> domain fold -> KV; query -> KV -> WorkflowReport."""

import msgspec
from nats.aio.msg import Msg

from aiop.contracts.envelope import decode_event, event_type_of
from aiop.contracts.queries import WorkflowQuery
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.reporter.adapters.advisories import record_advisory
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.domain import fold, to_report
from aiop.servicekit import EventBus, Permanent
from aiop.servicekit.rpc import QueryFailed

_query = msgspec.json.Decoder(WorkflowQuery)


class Reporter:
    def __init__(self, store: ReportStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    async def on_event(self, raw: Msg) -> None:
        """Fold one workflow or step event into its workflow's summary."""
        event_type = event_type_of(raw.subject, dict(raw.headers or {}))
        if event_type is None:
            raise Permanent(f"no known event type for {raw.subject}")
        event = decode_event(raw.data, event_type)  # UndecodableEvent -> dead letter
        workflow_id = getattr(event, "workflow_id", None)
        try:
            check_token(workflow_id or "", "workflow id")  # it becomes the KV key
        except InvalidToken as exc:
            raise Permanent(str(exc)) from exc
        await self.store.change(workflow_id, lambda state: fold(state, event))  # type: ignore[arg-type]

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
