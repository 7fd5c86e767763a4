"""What a service says it sends and receives on the bus, one record per subject.

Each ``Service`` keeps its own list, filled by its registrations; the AsyncAPI document
is generated from every service's list (``task schemas``), so the document is exactly
what the services do.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from aiop.contracts.endpoints import Endpoint


class Action(StrEnum):
    PUBLISH = "publish"  # events it emits
    CONSUME = "consume"  # a durable consumer of a stream
    LISTEN = "listen"  # a core NATS subscription: nothing stored, nothing redelivered
    ANSWER = "answer"  # a request/reply endpoint it serves
    ASK = "ask"  # a request/reply endpoint it calls
    BUCKET = "bucket"  # a JetStream key-value bucket it reads, writes and watches
    READ = "read"  # a stream whose messages it looks up by sequence
    OBJECTS = "objects"  # a JetStream object store it reads and writes
    FOLLOW = "follow"  # a stream it reads through short-lived ordered consumers of its own
    PURGE = "purge"  # a stream whose messages it removes (a removed run's logs)
    LEASE = "lease"  # a stream it hands out through durable consumers it names as it goes


@dataclass(frozen=True)
class Traffic:
    service: str
    action: Action
    subject: str  # the event type or endpoint subject; CONSUME/LISTEN: the filter; BUCKET, READ: the name
    message: type[msgspec.Struct] | None  # the event, or what a listener decodes
    endpoint: Endpoint[Any, Any] | None = None  # ANSWER/ASK
    durable: str | None = None  # CONSUME: the durable consumer's name
    queue: str | None = None  # LISTEN: the queue group sharing the messages
