"""AIOP's delivery policy for JetStream consumers, applied to every message by ``settle``.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.aio.msg import Msg

from aiop.contracts.envelope import UndecodableEvent

if TYPE_CHECKING:
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
    # Batch consumers only: after a fetch shorter than batch_size, wait this long before
    # the next, so that under light load events gather into fewer, larger batches. For
    # consumers off the critical path, where a few ms of lag costs nothing.
    linger: float = 0.0

    def nak_delay(self, delivered: int) -> float:
        return self.nak_delays[min(delivered, len(self.nak_delays)) - 1]


async def settle(
    raw: Msg, handler: Callable[[Msg], Awaitable[None]], policy: DeliveryPolicy, bus: "EventBus"
) -> None:
    """Run ``handler`` on one JetStream message and ack, NAK or dead-letter it."""
    try:
        await handler(raw)
    except Exception as exc:
        await settle_outcome(raw, exc, policy, bus)
        return
    await raw.ack()


async def settle_outcome(
    raw: Msg, outcome: BaseException | None, policy: DeliveryPolicy, bus: "EventBus"
) -> None:
    """Ack ``raw`` if its handling succeeded (``outcome`` None), else NAK or dead-letter it
    by what failed."""
    if outcome is None:
        await raw.ack()
    elif isinstance(outcome, Permanent | UndecodableEvent):
        await bus.dead_letter(raw, f"{type(outcome).__name__}: {outcome}")
        await raw.term()
    else:
        meta = raw.metadata
        delivered = meta.num_delivered
        if delivered >= policy.max_deliver:
            reason = (
                f"failed {delivered} deliveries; last error {type(outcome).__name__}: {outcome}"
            )
            await bus.dead_letter(raw, reason)
            await raw.term()
        else:
            log.warning(
                "%s on %s (delivery %d/%d), retrying: %r",
                meta.consumer, raw.subject, delivered, policy.max_deliver, outcome,
            )  # fmt: skip
            await raw.nak(delay=policy.nak_delay(delivered))
