"""Publishing a run's events until they are stored, whatever NATS is going through.

A run must not lose an event because NATS restarted mid-step. Each event keeps its id
across retries, so a retry whose first attempt was stored after all is dropped by the
server's duplicate window (docs/delivery.md, "Publishing once").
"""

import asyncio
import logging

from aiop.contracts import Event
from aiop.servicekit import EventBus

log = logging.getLogger("aiop.dagger_executor.publish")

BACKOFF = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class RetryingPublisher:
    def __init__(self, bus: EventBus, backoff: tuple[float, ...] = BACKOFF) -> None:
        self._bus = bus
        self._backoff = backoff

    async def publish(self, event: Event) -> None:
        """Return once ``event`` is stored; only cancellation stops the retries."""
        failures = 0
        while True:
            try:
                await self._bus.publish(event)
                if failures:
                    log.info("published %s after %d failed attempts", event.TYPE, failures)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self._backoff[min(failures, len(self._backoff) - 1)]
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("publishing %s failed (%r), retrying", event.subject(), exc)
                await asyncio.sleep(delay)
