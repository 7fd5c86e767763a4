"""Rate limits per principal, per client address, and on token requests.

Each limit is a burst and a sustained rate, written in the ``limits`` library's notation
(``"100/second;3000/minute"``): together they behave like a token bucket holding the
burst and refilled at the sustained rate. Counters live in this process's memory, in
fixed windows: the cheapest of the library's strategies (about 3 µs a window against 5
for sliding-window counters, on every request of the gateway's fast path), and the short
window bounds the burst a window boundary lets through. Replicas of the gateway each keep
their own counters. An empty setting switches that limit off.
"""

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many, storage, strategies


@dataclass(frozen=True)
class Exceeded:
    """Which limit a request hit, for the 429's headers."""

    policy: str  # "principal", "address" or "tokens"
    limit: int
    window_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        # RateLimit-Policy and RateLimit as the IETF httpapi draft names them.
        return {
            "Retry-After": str(self.retry_after_s),
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window_s}',
            "RateLimit": f'"{self.policy}";r=0;t={self.retry_after_s}',
        }


class RateLimits:
    def __init__(self, per_principal: str, per_address: str, token_requests: str) -> None:
        self._limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
        self._policies: dict[str, list[RateLimitItem]] = {
            "principal": parse_many(per_principal) if per_principal.strip() else [],
            "address": parse_many(per_address) if per_address.strip() else [],
            "tokens": parse_many(token_requests) if token_requests.strip() else [],
        }

    def hit(self, policy: str, key: str) -> Exceeded | None:
        """Count one request of ``key`` under ``policy``; what it exceeded, if anything."""
        for item in self._policies[policy]:
            if not self._limiter.hit(item, policy, key):
                stats = self._limiter.get_window_stats(item, policy, key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return Exceeded(policy, item.amount, item.get_expiry(), wait)
        return None
