"""The AsyncAPI document lists exactly what the services do on the bus.

Each service is built as it runs (``aiop.cli.services``); every subject it consumes,
listens to, publishes, answers or asks must be in the committed proto-schemas/asyncapi.json
with the same filter and durable, and the document lists nothing no service does. At run
time a service cannot publish or ask what it did not register (``UndeclaredEvent``), so
between the two nothing reaches the bus undocumented.
"""

import json
from pathlib import Path

import pytest
from tools.asyncapi import STORAGE, operation_id

from aiop.cli.services import all_services
from aiop.servicekit.traffic import Action

DOCUMENT = Path(__file__).resolve().parents[1] / "proto-schemas" / "asyncapi.json"
SERVICES = all_services()


@pytest.mark.parametrize("svc", SERVICES, ids=[s.name for s in SERVICES])
def test_every_registration_is_in_the_document(svc) -> None:  # type: ignore[no-untyped-def]
    operations = json.loads(DOCUMENT.read_text())["operations"]
    for t in svc.traffic:
        if t.action in STORAGE:
            continue
        op = operations.get(operation_id(t))
        assert op is not None, f"{svc.name} {t.action}s {t.subject}, which the document lacks"
        if t.action in (Action.CONSUME, Action.LISTEN):
            assert (op["x-filter"], op.get("x-durable")) == (t.subject, t.durable)


def test_the_document_lists_nothing_no_service_does() -> None:
    done = {operation_id(t) for svc in SERVICES for t in svc.traffic if t.action not in STORAGE}
    listed = set(json.loads(DOCUMENT.read_text())["operations"])
    assert listed - done == set()


def test_every_service_has_a_part_in_the_document() -> None:
    assert {s.name for s in SERVICES} == {
        "gateway", "auth", "task-manager", "distributor", "dagger-executor", "reporter",
    }  # fmt: skip
