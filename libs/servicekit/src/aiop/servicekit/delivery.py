"""AIOP's delivery policy for JetStream consumers: what becomes of a message once its
handler has run (docs/delivery.md, "Acknowledging").

- success: ack;
- ``Permanent`` or an undecodable payload: record in AIOP_DLQ with the reason, then term;
- any other error: NAK with a growing delay, until the consumer's ``max_deliver`` is
  reached; the last failure is recorded in AIOP_DLQ with its error, then termed.

A handler error is never a ``term`` on its own: one transient failure must not lose the
message. A NAK carries its own delay, because the consumer's backoff would only govern
redelivery after ``ack_wait``.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg

from aiop.contracts.envelope import UndecodableEvent

log = logging.getLogger("aiop.delivery")

# Keeps a message whole in AIOP_DLQ with the reason it was given up on.
DeadLetter = Callable[[Msg, str], Awaitable[None]]


class Permanent(Exception):
    """A failure no redelivery can fix; the message goes to the dead-letter stream at once."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How one durable consumer retries. Every field is chosen, none left to the server's
    defaults (unlimited deliveries, 1000 pending)."""

    max_deliver: int = 10
    ack_wait_s: float = 30.0
    # Delivery stops silently at this many unacked messages, NAKed ones waiting out their
    # delay included.
    max_ack_pending: int = 1000
    nak_delays_s: tuple[float, ...] = (0.05, 0.2, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)

    def nak_delay_s(self, delivered: int) -> float:
        return self.nak_delays_s[min(delivered, len(self.nak_delays_s)) - 1]


async def settle(
    raw: Msg, outcome: BaseException | None, policy: DeliveryPolicy, dead_letter: DeadLetter
) -> None:
    """Ack ``raw`` if its handling succeeded (``outcome`` None), else NAK or dead-letter it
    by what failed."""
    if outcome is None:
        await raw.ack()
    elif isinstance(outcome, Permanent | UndecodableEvent):
        await dead_letter(raw, f"{type(outcome).__name__}: {outcome}")
        await raw.term()
    else:
        meta = raw.metadata
        delivered = meta.num_delivered
        if delivered >= policy.max_deliver:
            reason = (
                f"failed {delivered} deliveries; last error {type(outcome).__name__}: {outcome}"
            )
            await dead_letter(raw, reason)
            await raw.term()
        else:
            log.warning(
                "%s on %s (delivery %d/%d), retrying: %r",
                meta.consumer, raw.subject, delivered, policy.max_deliver, outcome,
            )  # fmt: skip
            await raw.nak(delay=policy.nak_delay_s(delivered))
