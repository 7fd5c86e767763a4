"""The bus as `aiop up` configures it: every connection authenticates, and each identity
may publish and subscribe only what its part needs (docs/security.md, "The bus")."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from aiop.cli.identities import ADMIN, EXTERNAL, OPERATOR, Identity, authorization
from aiop.cli.services import all_services
from aiop.contracts.events import EVENT_TYPES
from aiop.contracts.subjects import KV_SECRETS
from aiop.devstack import NatsServer, until
from aiop.servicekit import open_bucket
from aiop.servicekit.permissions import inbox_prefix
from aiop.servicekit.streams import ensure_streams
from aiop.servicekit.traffic import Action

pytestmark = pytest.mark.integration

DECLARED = {
    svc.name: {t.subject for t in svc.traffic if t.action is Action.PUBLISH}
    for svc in all_services()
}


@dataclass
class Bus:
    url: str
    identities: dict[str, Identity]
    admin: Client
    clients: list[Client] = field(default_factory=list)

    async def connect(self, name: str) -> tuple[Client, list[str]]:
        """A client as identity ``name``, and the errors the server sends it."""
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            self.url, nkeys_seed=str(self.identities[name].seed_file),
            inbox_prefix=inbox_prefix(name), error_cb=on_error,
        )  # fmt: skip
        self.clients.append(nc)
        return nc, errors

    async def stored(self, subject: str) -> int:
        info = await self.admin.jetstream().stream_info("AIOP", subjects_filter=subject)
        return sum((info.state.subjects or {}).values())


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    """A nats-server with the authorization `aiop up` writes, and its streams."""
    config, identities = authorization(tmp_path / "state")
    server = NatsServer(tmp_path / "nats", authorization=config).start()
    admin = await nats.connect(server.url, nkeys_seed=str(identities[ADMIN].seed_file))
    await ensure_streams(admin.jetstream())
    ready = Bus(server.url, identities, admin)
    try:
        yield ready
    finally:
        for nc in [*ready.clients, admin]:
            await nc.close()
        server.stop()


def refused(errors: list[str], what: str, subject: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:  # the client lower-cases the server's message
        return any(f'violation for {what} to "{subject.lower()}"' in e.lower() for e in errors)

    return check


async def test_an_anonymous_client_is_refused(bus: Bus) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(bus.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_forged_completion_is_refused_by_the_server(bus: Bus) -> None:
    for forger in ("reporter", "gateway", "distributor", EXTERNAL, OPERATOR):
        nc, errors = await bus.connect(forger)
        subject = f"aiop.workflow.completed.v1.wf-{forger}"
        await nc.publish(subject, b'{"workflow_id": "wf", "executor_id": "ghost"}')
        await nc.flush()
        await until(refused(errors, "publish", subject), 5, f"{forger}'s forgery refused")
        assert await bus.stored(subject) == 0
    executor, _ = await bus.connect("dagger-executor")
    await executor.jetstream().publish("aiop.workflow.completed.v1.wf-real", b"{}")
    assert await bus.stored("aiop.workflow.completed.v1.wf-real") == 1


@pytest.mark.parametrize("service", sorted(DECLARED))
async def test_a_service_publishes_only_what_it_declared(bus: Bus, service: str) -> None:
    nc, errors = await bus.connect(service)
    for ce_type in EVENT_TYPES:
        await nc.publish(f"{ce_type}.x.y", b"{}")
    await nc.flush()
    for ce_type in set(EVENT_TYPES) - DECLARED[service]:
        await until(refused(errors, "publish", f"{ce_type}.x.y"), 5, f"{ce_type} refused")
    for ce_type in DECLARED[service]:
        assert not any(f"{ce_type}.x.y" in e for e in errors), ce_type


async def test_an_external_system_publishes_under_ext_only(bus: Bus) -> None:
    nc, errors = await bus.connect(EXTERNAL)
    ack = await nc.jetstream().publish("ext.github.push", b'{"ref": "main"}')
    assert ack.stream == "AIOP_EXT"
    await nc.publish("aiop.workflow.submitted.v1.wf1", b"{}")
    await nc.flush()
    await until(refused(errors, "publish", "aiop.workflow.submitted.v1.wf1"), 5, "refused")


async def test_nobody_but_auth_reads_api_keys_or_another_services_replies(bus: Bus) -> None:
    for name in ("reporter", "gateway", EXTERNAL, OPERATOR):
        nc, errors = await bus.connect(name)
        await nc.subscribe("aiop.auth.token.v1")
        await nc.subscribe(f"{inbox_prefix('gateway')}.>" if name != "gateway" else ">")
        await nc.flush()
        await until(refused(errors, "subscription", "aiop.auth.token.v1"), 5, f"{name}: keys")
    auth, errors = await bus.connect("auth")
    await auth.subscribe("aiop.auth.token.v1")
    await auth.flush()
    assert errors == []


async def test_the_operator_reads_streams_but_not_a_services_consumer(bus: Bus) -> None:
    admin_js = bus.admin.jetstream()
    await admin_js.publish("aiop.workflow.queued.v1.wf1", b"{}")
    await admin_js.add_consumer("AIOP", durable_name="task-manager-events")
    nc, errors = await bus.connect(OPERATOR)
    js = nc.jetstream()
    info = await js.add_consumer("AIOP")  # a consumer of its own, named by the server
    own = await js.pull_subscribe_bind(info.name, "AIOP")
    assert [m.subject for m in await own.fetch(1, timeout=5)] == ["aiop.workflow.queued.v1.wf1"]
    theirs = await js.pull_subscribe_bind("task-manager-events", "AIOP")
    with pytest.raises(nats.errors.TimeoutError):
        await asyncio.wait_for(theirs.fetch(1, timeout=1), 3)
    subject = "$JS.API.CONSUMER.MSG.NEXT.AIOP.task-manager-events"
    await until(refused(errors, "publish", subject), 5, "fetching a service's messages refused")


async def test_identities_are_kept_private(bus: Bus) -> None:
    for identity in bus.identities.values():
        assert identity.seed_file.stat().st_mode & 0o777 == 0o600, identity.name
        assert identity.seed_file.read_bytes().startswith(b"SU")  # a user seed
    folder = next(iter(bus.identities.values())).seed_file.parent
    assert folder.stat().st_mode & 0o777 == 0o700


async def test_only_the_gateway_and_executors_reach_the_secrets(bus: Bus) -> None:
    """The sealed values are not for anyone else, even sealed (docs/security.md, "Secrets")."""
    stream = f"KV_{KV_SECRETS}"
    kv = await open_bucket(bus.admin.jetstream(), KV_SECRETS)
    await kv.put("default.API_TOKEN", b"sealed")
    for name in ("gateway", "dagger-executor"):
        nc, _ = await bus.connect(name)
        theirs = await nc.jetstream().key_value(KV_SECRETS)
        assert (await theirs.get("default.API_TOKEN")).value == b"sealed", name
    for name in ("reporter", "distributor", "task-manager", "auth", OPERATOR, EXTERNAL):
        nc, errors = await bus.connect(name)
        subjects = [
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.$KV.{KV_SECRETS}.default.API_TOKEN",
            f"$KV.{KV_SECRETS}.default.API_TOKEN",
        ]
        for subject in subjects:
            await nc.publish(subject, b"{}")
        await nc.flush()
        for subject in subjects:
            await until(refused(errors, "publish", subject), 5, f"{name}: {subject} refused")
    assert (await kv.get("default.API_TOKEN")).value == b"sealed"
