"""task-manager rides out a PostgreSQL crash without being restarted."""

import asyncio
from pathlib import Path

import msgspec
import nats
import pytest

from aiop.contracts import StepSpec, WorkflowQueued, WorkflowSpec, WorkflowSubmitted
from aiop.contracts.endpoints import GET_WORKFLOW
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import Event
from aiop.contracts.queries import WorkflowQuery, WorkflowView
from aiop.devstack import until
from aiop.devstack.postgres import PostgresServer
from aiop.servicekit import rpc
from aiop.task_manager.main import TaskManagerSettings, build

pytestmark = pytest.mark.integration

SPEC = WorkflowSpec(name="build", steps=[StepSpec(name="lint", run=["ruff"])])


async def test_survives_a_postgres_crash(nats_url: str, tmp_path: Path) -> None:
    pg = await asyncio.to_thread(PostgresServer(tmp_path / "pg").start)
    app = build(TaskManagerSettings(nats_url=nats_url, database_url=pg.url, outbox_interval_s=0.05))
    task = asyncio.create_task(app.run())
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def send(event: Event) -> None:
        env = encode_event(event, "test")
        await js.publish(env.subject, env.body, headers=env.headers, stream="AIOP")

    async def state() -> str | None:
        try:
            body = await rpc.request(nc, GET_WORKFLOW.subject, WorkflowQuery(workflow_id="wf1"))
        except rpc.QueryFailed:
            return None
        return msgspec.json.decode(body, type=WorkflowView).state

    async def state_is(expected: str) -> bool:
        return await state() == expected

    try:
        await rpc.wait_ready(nc, "task-manager", timeout=15)
        await send(WorkflowSubmitted(workflow_id="wf1", spec=SPEC, principal="me"))
        await until(lambda: state_is("accepted"), 15, "state accepted")
        await asyncio.to_thread(pg.stop, "immediate")
        # Handled while the database is down: fails, is NAKed, and is redelivered later.
        await send(WorkflowQueued(workflow_id="wf1", reason="waiting for an executor"))
        assert await state() is None
        await asyncio.to_thread(pg.start)
        await until(lambda: state_is("queued"), 15, "state queued")
    finally:
        app.exit()
        await task
        await nc.close()
        await asyncio.to_thread(pg.stop)
