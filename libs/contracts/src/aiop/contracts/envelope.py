"""Events on the wire: msgspec JSON body, CloudEvents binary-mode headers.

``Nats-Msg-Id`` is the event id, so JetStream drops a retried publish of the same event
within its duplicate window (docs/delivery.md, "Publishing once").
"""

from typing import TypeVar

import msgspec

from aiop.contracts.events import EVENT_TYPES, Event

E = TypeVar("E", bound=Event)

SPECVERSION = "1.0"
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Event], msgspec.json.Decoder[Event]] = {}


class Envelope(msgspec.Struct, frozen=True):
    """What a publisher hands to NATS: subject, headers and body."""

    subject: str
    headers: dict[str, str]
    body: bytes


class UndecodableEvent(ValueError):
    """A message that no version of its event type can read; it belongs in the dead-letter stream."""


def encode_event(event: Event, source: str) -> Envelope:
    headers = {
        "Nats-Msg-Id": event.event_id,
        "ce-specversion": SPECVERSION,
        "ce-id": event.event_id,
        "ce-type": event.TYPE,
        "ce-source": source,
        "ce-time": event.occurred_at.isoformat(),
        "content-type": "application/json",
    }
    return Envelope(subject=event.subject(), headers=headers, body=_encoder.encode(event))


def decode_event(body: bytes, as_type: type[E]) -> E:
    """Decode ``body`` as ``as_type``; raises UndecodableEvent with the precise reason."""
    decoder = _decoders.get(as_type)
    if decoder is None:
        decoder = _decoders[as_type] = msgspec.json.Decoder(as_type)
    try:
        return decoder.decode(body)  # type: ignore[return-value]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UndecodableEvent(f"cannot decode as {as_type.TYPE}: {exc}") from exc


def event_type_of(subject: str, headers: dict[str, str] | None) -> type[Event] | None:
    """The struct for a message, from its ``ce-type`` header or else its subject stem."""
    ce_type = (headers or {}).get("ce-type")
    if ce_type:
        return EVENT_TYPES.get(ce_type)
    parts = subject.split(".")
    return EVENT_TYPES.get(".".join(parts[:4]))
