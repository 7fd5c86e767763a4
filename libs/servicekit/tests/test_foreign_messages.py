"""Messages that are no AIOP event (CloudEvents under ext.>): declared like events, so
that a service's bus permissions cover them and nothing more."""

import pytest

from aiop.contracts.triggers import CloudEvent
from aiop.servicekit import Permanent, Service, ServiceSettings, UndeclaredEvent
from aiop.servicekit.permissions import service_permissions


async def handle(event: CloudEvent) -> None:
    raise Permanent("not used here")


def test_a_consumer_of_foreign_messages_may_read_its_durable_only() -> None:
    svc = Service("reader", ServiceSettings())
    svc.consume_messages("ext.>", CloudEvent, lambda msg: msg, handle, durable="reader-ext")
    granted = service_permissions("reader", svc.traffic).publish
    assert "$JS.API.CONSUMER.MSG.NEXT.AIOP_EXT.reader-ext" in granted
    assert "$JS.ACK.AIOP_EXT.reader-ext.>" in granted
    assert "ext.>" not in granted  # reading is not publishing
    with pytest.raises(ValueError, match="no stream"):
        svc.consume_messages("nowhere.>", CloudEvent, lambda msg: msg, handle, durable="x")


async def test_sending_is_allowed_under_the_declared_filter_only() -> None:
    svc = Service("sender", ServiceSettings())
    svc.publishes_to("ext.>", CloudEvent)
    assert "ext.>" in service_permissions("sender", svc.traffic).publish
    for subject in ("aiop.workflow.submitted.v1.x", "ext", "extra.a.b"):
        with pytest.raises(UndeclaredEvent):  # refused before any connection is used
            await svc.send(subject, b"{}", {})
