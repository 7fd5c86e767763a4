"""AIOP's delivery policy for JetStream consumers, applied as one broker middleware.

FastStream rejects (``term``) on error by default, so one transient failure would lose
the message for good (RELIABILITY.md, fact 1). Here instead:

- success: ack;
- ``Permanent`` or an undecodable payload: record in AIOP_DLQ with the reason, then term;
- any other error: NAK with a growing delay, until the consumer's ``max_deliver`` is
  reached; the last failure is recorded in AIOP_DLQ with its error, then termed.

A NAK carries its own delay; the consumer's ``backoff`` only governs redelivery after
``ack_wait`` (fact 6), so both are set.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fast_depends.exceptions import ValidationError
from faststream import BaseMiddleware
from faststream.middlewares import AckPolicy
from faststream.nats import ConsumerConfig, JStream, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import DeliverPolicy

from aiop.contracts.envelope import UndecodableEvent
from aiop.contracts.subjects import STREAM_EVENTS

if TYPE_CHECKING:
    from faststream.message import StreamMessage
    from faststream.nats import NatsBroker

    from aiop.servicekit.bus import EventBus

log = logging.getLogger("aiop.delivery")


class Permanent(Exception):
    """A failure no redelivery can fix; the message goes to the dead-letter stream at once."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How one durable consumer retries. Every field is chosen, none left to defaults."""

    max_deliver: int = 10
    ack_wait: float = 30.0
    # Delivery stops silently at this many unacked messages (fact 5): sized to the
    # consumer's concurrency, with room for in-flight NAK delays.
    max_ack_pending: int = 1000
    nak_delays: tuple[float, ...] = (0.05, 0.2, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
    batch_size: int = 64
    max_workers: int = 1

    def nak_delay(self, delivered: int) -> float:
        return self.nak_delays[min(delivered, len(self.nak_delays)) - 1]


_policies: dict[str, DeliveryPolicy] = {}


def durable_consumer(
    broker: "NatsBroker",
    subject: str,
    durable: str,
    *,
    policy: DeliveryPolicy = DeliveryPolicy(),
    stream: str = STREAM_EVENTS,
    title: str | None = None,
) -> Callable[..., Any]:
    """A durable pull subscriber with explicit acks under AIOP's delivery policy."""
    _policies[durable] = policy
    return broker.subscriber(  # type: ignore[no-any-return]
        subject,
        stream=JStream(stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=policy.batch_size, timeout=1.0),
        config=ConsumerConfig(
            durable_name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=policy.ack_wait,
            max_deliver=policy.max_deliver,
            max_ack_pending=policy.max_ack_pending,
            backoff=[policy.ack_wait] * 2,
        ),
        ack_policy=AckPolicy.MANUAL,  # the middleware below acks, NAKs and terms
        max_workers=policy.max_workers,
        title=title,
    )


def delivery_middleware(bus: "EventBus") -> type[BaseMiddleware]:
    """The middleware class for a broker whose dead letters ``bus`` publishes."""

    class Delivery(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: "StreamMessage[Any]") -> Any:
            raw = msg.raw_message
            try:
                meta = raw.metadata
            except Exception:  # core NATS message (request/reply, heartbeat): no acks
                return await call_next(msg)
            policy = _policies.get(meta.consumer or "", DeliveryPolicy())
            try:
                result = await call_next(msg)
            except (Permanent, UndecodableEvent, ValidationError) as exc:
                await bus.dead_letter(raw, f"{type(exc).__name__}: {exc}")
                await raw.term()
                return None
            except Exception as exc:
                delivered = meta.num_delivered
                if delivered >= policy.max_deliver:
                    reason = (
                        f"failed {delivered} deliveries; last error {type(exc).__name__}: {exc}"
                    )
                    await bus.dead_letter(raw, reason)
                    await raw.term()
                else:
                    log.warning(
                        "%s on %s (delivery %d/%d), retrying: %r",
                        meta.consumer, raw.subject, delivered, policy.max_deliver, exc,
                    )  # fmt: skip
                    await raw.nak(delay=policy.nak_delay(delivered))
                return None
            await raw.ack()
            return result

    return Delivery
