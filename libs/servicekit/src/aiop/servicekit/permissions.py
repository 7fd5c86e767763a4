"""The NATS permissions of a service, derived from its registrations (``Service.traffic``).

A service may publish the events it declared and the requests it asks, read only its own
inbox, the subjects it listens to and the endpoints it answers, and use the JetStream API
for its own durable consumers and key-value buckets only. Replies to requests it received
are allowed (``allow_responses``); nothing else. So a service cannot forge another's
events, read another's replies (where API keys and tokens travel), or read a stream it
does not consume.
"""

from dataclasses import dataclass, field
from typing import Any

from aiop.contracts.events import EVENT_TYPES
from aiop.contracts.subjects import STREAM_SUBJECTS, stream_for
from aiop.servicekit.traffic import Action, Traffic

# What nats.micro subscribes to for discovery and readiness.
MICRO = ("$SRV.PING", "$SRV.INFO", "$SRV.STATS")
# The JetStream API any client needs: account info (is JetStream up?).
JS_COMMON = ("$JS.API.INFO",)


def inbox_prefix(service: str) -> str:
    """The service's own inbox prefix: replies to it travel where only it may read."""
    return f"_INBOX_{service}"


@dataclass
class Permissions:
    publish: set[str] = field(default_factory=set)
    subscribe: set[str] = field(default_factory=set)
    deny_publish: set[str] = field(default_factory=set)  # exceptions to ``publish``
    allow_responses: bool = True  # replies to requests it received

    def as_config(self) -> dict[str, Any]:
        """The ``permissions`` block of a nats-server user, as data."""
        publish: dict[str, list[str]] = {"allow": sorted(self.publish)}
        if self.deny_publish:
            publish["deny"] = sorted(self.deny_publish)
        config: dict[str, Any] = {
            "publish": publish,
            "subscribe": {"allow": sorted(self.subscribe)},
        }
        if self.allow_responses:
            config["allow_responses"] = True
        return config


def service_permissions(name: str, traffic: list[Traffic], streams: bool = False) -> Permissions:
    """What service ``name`` may do on the bus; ``streams`` also lets it create and update
    AIOP's streams (only where no operator sets them up before the services start)."""
    p = Permissions(publish=set(JS_COMMON), subscribe={f"{inbox_prefix(name)}.>"})
    for sub in MICRO:
        p.subscribe |= {sub, f"{sub}.aiop-{name}", f"{sub}.aiop-{name}.>"}
    for t in traffic:
        _grant(p, t)
    if streams:
        for stream in STREAM_SUBJECTS:
            p.publish |= {f"$JS.API.STREAM.{op}.{stream}" for op in ("CREATE", "UPDATE", "INFO")}
    return p


def _grant(p: Permissions, t: Traffic) -> None:
    match t.action:
        case Action.PUBLISH:
            p.publish.add(
                EVENT_TYPES[t.subject].filter() if t.subject in EVENT_TYPES else t.subject
            )
        case Action.ASK:
            p.publish.add(t.subject)
        case Action.ANSWER | Action.LISTEN:
            p.subscribe.add(t.subject)
        case Action.CONSUME:
            stream, durable = stream_for(t.subject), t.durable
            p.publish |= {
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.>",
            }
        case Action.BUCKET:
            p.publish |= _bucket(t.subject)
        case Action.READ:
            p.publish |= _reads(t.subject)
        case Action.OBJECTS:
            p.publish |= _objects(t.subject)
        case Action.FOLLOW:
            p.publish |= _follows(stream_for(t.subject) or "")
        case Action.LEASE:
            p.publish |= _leases(stream_for(t.subject) or "")
        case Action.PURGE:
            p.publish.add(f"$JS.API.STREAM.PURGE.{t.subject}")


def _leases(stream: str) -> set[str]:
    """Durable pull consumers of any name on ``stream``, created as needed (one per
    project and capability of the agents' work), fetched from and acked."""
    return {
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.ACK.{stream}.>",
    }


def _reads(stream: str) -> set[str]:
    return {
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    }


def _follows(stream: str) -> set[str]:
    """Ordered consumers: created with a filter, recreated after a gap, flow controlled,
    delivered into the service's own inbox."""
    return {
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
    }


def _bucket(bucket: str) -> set[str]:
    stream = f"KV_{bucket}"
    return (
        _reads(stream)
        | _follows(stream)  # watching
        | {
            f"$KV.{bucket}.>",  # put, create, update, delete
            f"$JS.API.STREAM.CREATE.{stream}",
        }
    )


def _objects(bucket: str) -> set[str]:
    stream = f"OBJ_{bucket}"
    return (
        _reads(stream)
        | _follows(stream)  # reading an object's chunks
        | {
            f"$O.{bucket}.>",  # chunks and metadata
            f"$JS.API.STREAM.CREATE.{stream}",
            f"$JS.API.STREAM.PURGE.{stream}",  # replacing or deleting an object
            # nats-py reads an object through a consumer it finds the stream for by name.
            "$JS.API.STREAM.NAMES",
        }
    )
