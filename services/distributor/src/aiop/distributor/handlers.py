"""Thin handlers: decoded event -> Distributor. Every effect is state written, not
counted, so a redelivered event changes nothing."""

from aiop.contracts import (
    ExecutorHeartbeat,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
)
from aiop.distributor.dispatcher import Distributor


class Handlers:
    def __init__(self, distributor: Distributor) -> None:
        self.distributor = distributor

    async def heartbeat(self, hb: ExecutorHeartbeat) -> None:
        self.distributor.heartbeat(hb)

    async def accepted(self, event: WorkflowAccepted) -> None:
        await self.distributor.accepted(event.workflow_id, event.spec, event.principal)

    async def finished(self, event: WorkflowCompleted | WorkflowFailed | WorkflowCancelled) -> None:
        await self.distributor.finished(event.workflow_id)
