"""Claims in KV ``aiop_claims``: creating ``<workflow>.a<attempt>`` wins that attempt.

``kv.create`` succeeds for exactly one writer, so of all executors of a pool (and all
redeliveries of one request) exactly one runs an attempt.
"""

from enum import Enum

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from aiop.contracts.subjects import KV_CLAIMS
from aiop.servicekit import open_bucket


class Claim(Enum):
    WON = "won"  # this call created the key
    OURS = "ours"  # the key already names this executor (an earlier delivery)
    TAKEN = "taken"  # another executor holds it


class Claims:
    def __init__(self, js: JetStreamContext, executor_id: str, replicas: int = 1) -> None:
        self._js = js
        self._executor_id = executor_id
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def bucket(self) -> KeyValue:
        """The claims bucket, created if missing."""
        if self._kv is None:
            self._kv = await open_bucket(self._js, KV_CLAIMS, replicas=self._replicas)
        return self._kv

    async def claim(self, key: str) -> Claim:
        kv = await self.bucket()
        try:
            await kv.create(key, self._executor_id.encode())
            return Claim.WON
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await kv.get(key)
            holder = (entry.value or b"").decode()
            return Claim.OURS if holder == self._executor_id else Claim.TAKEN
