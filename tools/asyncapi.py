"""The AsyncAPI 3.0 document of the bus, made from what the services register.

One channel per event type (its address with the routing tokens as parameters), per
request/reply endpoint and per other subject a service listens to; one operation per
service and registration. Nothing here is kept by hand: a service that starts consuming,
publishing, answering or asking something shows up here at the next ``task schemas``.
"""

from typing import Any

import msgspec

from aiop.contracts.endpoints import Endpoint
from aiop.contracts.events import Event
from aiop.servicekit.traffic import Action, Traffic

TOKENS = {
    "workflow_id": "The workflow's id.",
    "pool": "The executor pool.",
    "executor_id": "The executor's id.",
    "stream": "The stream the dead message came from.",
    "consumer": "The consumer that gave up on it.",
}
CE_HEADERS = {
    "type": "object",
    "properties": {
        name: {"type": "string"}
        for name in ("Nats-Msg-Id", "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time")
    },
    "required": ["Nats-Msg-Id", "ce-id", "ce-type", "ce-source"],
}
SENDS = {Action.PUBLISH, Action.ASK}


class Document:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def add(self, t: Traffic) -> None:
        if t.endpoint is not None:
            channel = self._endpoint(t.endpoint)
        elif isinstance(t.message, type) and issubclass(t.message, Event):
            channel = self._event(t.message)
        else:
            channel = self._subject(t.subject, t.message)
        op: dict[str, Any] = {
            "action": "send" if t.action in SENDS else "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "x-service": t.service,
            "x-registration": str(t.action),
            "tags": [{"name": t.service}],
        }
        if t.action in (Action.CONSUME, Action.LISTEN, Action.FOLLOW, Action.LEASE):
            op["x-filter"] = t.subject
        for key, value in (("x-durable", t.durable), ("x-queue", t.queue)):
            if value:
                op[key] = value
        if t.endpoint is not None:
            op["summary"] = t.endpoint.summary
            op["reply"] = {"channel": {"$ref": f"#/channels/{channel}.reply"}}
        self.operations[operation_id(t)] = op

    def _event(self, cls: type[Event]) -> str:
        ce_type = cls.TYPE
        self.messages[ce_type] = {
            "name": ce_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"events/{ce_type}.json"},
        }
        self.channels[ce_type] = {
            "address": ".".join([ce_type, *(f"{{{t}}}" for t in cls.ROUTING)]),
            "parameters": {t: {"description": TOKENS[t]} for t in cls.ROUTING},
            "messages": {cls.__name__: {"$ref": f"#/components/messages/{ce_type}"}},
        }
        return ce_type

    def _endpoint(self, endpoint: Endpoint[Any, Any]) -> str:
        subject = endpoint.subject
        for part, struct in (("request", endpoint.request), ("reply", endpoint.reply)):
            name = f"{subject}.{part}"
            self.messages[name] = {
                "name": name,
                "contentType": "application/json",
                "payload": self._component(struct),
            }
        self.channels[subject] = {
            "address": subject,
            "messages": {"request": {"$ref": f"#/components/messages/{subject}.request"}},
        }
        self.channels[f"{subject}.reply"] = {
            "address": None,  # the asker's inbox
            "messages": {"reply": {"$ref": f"#/components/messages/{subject}.reply"}},
        }
        return subject

    def _subject(self, subject: str, struct: type[msgspec.Struct] | None) -> str:
        """A subject that carries no AIOP event (a server advisory)."""
        self.messages[subject] = {
            "name": subject,
            "contentType": "application/json",
            "payload": self._component(struct),
        }
        self.channels[subject] = {
            "address": subject,
            "messages": {"message": {"$ref": f"#/components/messages/{subject}"}},
        }
        return subject

    def _component(self, struct: type[msgspec.Struct] | None) -> dict[str, Any]:
        if struct is None:
            return {"type": "object"}
        (ref,), defs = msgspec.json.schema_components(
            [struct], ref_template="#/components/schemas/{name}"
        )
        self.schemas.update(defs)
        return ref


def operation_id(t: Traffic) -> str:
    what = t.endpoint.subject if t.endpoint is not None else t.subject
    if isinstance(t.message, type) and issubclass(t.message, Event):
        what = t.message.TYPE
    return f"{t.service}.{t.action}.{what}"


# Key-value buckets, reads by sequence and purges are storage, not messages on a channel.
STORAGE = {Action.BUCKET, Action.OBJECTS, Action.READ, Action.PURGE}


def asyncapi(traffic: list[Traffic]) -> dict[str, Any]:
    doc = Document()
    for t in sorted(traffic, key=operation_id):
        if t.action not in STORAGE:
            doc.add(t)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AIOP bus",
            "version": "1.0.0",
            "description": "Generated from the services' registrations by tools/schemas.py"
            " (`task schemas`); do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {"messages": doc.messages, "schemas": doc.schemas},
    }
