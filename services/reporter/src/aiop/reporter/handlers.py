"""Thin handlers: events -> domain fold -> KV (and webhook deliveries); query -> KV ->
WorkflowReport; advisory -> dead-letter record."""

import asyncio
from collections.abc import Callable

from nats.js import JetStreamContext

from aiop.contracts.events import WorkflowEvent
from aiop.contracts.queries import WorkflowQuery, WorkflowReport
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.reporter.adapters.advisories import Advisory, record_advisory
from aiop.reporter.adapters.reports import ReportStore
from aiop.reporter.domain import ReportState, fold, to_report
from aiop.reporter.webhooks import Webhooks
from aiop.servicekit import Delivery, EventBus, Outcomes, Permanent
from aiop.servicekit.rpc import QueryFailed


def _fold_all(state: ReportState | None, events: list[tuple[int, WorkflowEvent]]) -> ReportState:
    for _, event in events:
        state = fold(state, event)
    assert state is not None  # at least one event, and fold always returns a state
    return state


class Reporter:
    def __init__(
        self,
        store: ReportStore,
        bus: EventBus,
        jetstream: Callable[[], JetStreamContext],
        webhooks: Webhooks | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.jetstream = jetstream
        self.webhooks = webhooks

    async def on_events(self, batch: list[Delivery[WorkflowEvent]]) -> Outcomes:
        """Fold a fetch of workflow and step events into their workflows' summaries: one
        KV write per workflow per fetch, the workflows written concurrently."""
        outcomes: Outcomes = [None] * len(batch)
        by_workflow: dict[str, list[tuple[int, WorkflowEvent]]] = {}
        for i, one in enumerate(batch):
            try:  # the id becomes the KV key
                check_token(one.event.workflow_id, "workflow id")
            except InvalidToken as exc:
                outcomes[i] = Permanent(str(exc))
                continue
            by_workflow.setdefault(one.event.workflow_id, []).append((i, one.event))

        async def write(workflow_id: str, events: list[tuple[int, WorkflowEvent]]) -> None:
            try:
                state = await self.store.change(workflow_id, lambda state: _fold_all(state, events))
                # After the fold, which knows the project. A failed publish retries these
                # events: the fold takes them again unchanged, and the delivery messages'
                # ids drop what was published before.
                hooks = self.webhooks
                if hooks is not None and hooks.wanted(state.project):
                    assert state.project is not None
                    await hooks.fan_out(state.project, [event for _, event in events])
            except Exception as exc:  # these events are retried; the other workflows' stand
                for i, _ in events:
                    outcomes[i] = exc

        await asyncio.gather(*(write(w, events) for w, events in by_workflow.items()))
        return outcomes

    async def get_report(self, query: WorkflowQuery) -> WorkflowReport:
        """``aiop.query.report.get.v1``: the summary, 404 if unknown."""
        try:
            check_token(query.workflow_id, "workflow id")
        except InvalidToken as exc:
            raise QueryFailed(400, str(exc)) from exc
        state, _ = await self.store.get(query.workflow_id)
        if state is None:
            raise QueryFailed(404, f"no report for workflow {query.workflow_id}")
        return to_report(state)

    async def on_advisory(self, advisory: Advisory) -> None:
        await record_advisory(self.jetstream(), self.bus, advisory)
