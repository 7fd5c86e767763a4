"""Cancel requests: the gateway creates one key per workflow in KV ``aiop_cancels``;
executors and the distributor watch the bucket and stop what they hold of it.

A key, not an event on a durable consumer, because everyone who may hold the workflow
needs it, now and later: an executor that takes the workflow's request after the cancel
reads it from its copy of the bucket, a reconnecting watcher catches up by itself, and
creating the key is the one write that decides whether a cancel is new. Keys expire
(``CANCEL_TTL_S``): by then every workflow they name has long ended.
"""

from datetime import datetime

import msgspec

CANCEL_TTL_S = 24 * 3600.0


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True):
    principal: str  # who asked
    requested_at: datetime
    reason: str = ""

    def describe(self) -> str:
        return self.reason or f"cancelled by {self.principal}"


decode_cancel = msgspec.json.Decoder(CancelRequest).decode
