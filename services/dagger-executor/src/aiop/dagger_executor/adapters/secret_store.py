"""Stored secrets, as an executor reads them: KV ``aiop_secrets``, each value opened with
the executors' private key at the start of the step that names it, and kept nowhere.

The gateway sealed each value to the matching public key, bound to its key
``<project>.<name>`` (``aiop.contracts.secrets``): a value copied under another name or
into another project does not open.
"""

import asyncio
import logging
from pathlib import Path

import msgspec
import nats.js.errors
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from aiop.contracts.secrets import (
    CannotOpen,
    decode_stored,
    key_id,
    load_private_key,
    open_sealed,
    secret_key,
)
from aiop.contracts.subjects import KV_SECRETS
from aiop.dagger_executor.domain.secrets import SecretUnavailable
from aiop.servicekit import open_bucket

log = logging.getLogger("aiop.dagger_executor.secrets")

# A bus that does not answer at once may be reconnecting: try a few times before the
# step fails for it.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)


class SecretStore:
    def __init__(self, key_file: Path | None, replicas: int = 1) -> None:
        self._key_file = key_file
        self._replicas = replicas
        self._key: X25519PrivateKey | None = None
        self._kv: KeyValue | None = None

    async def open(self, js: JetStreamContext) -> None:
        """Load the private key (if this executor has one) and open the bucket."""
        if self._key_file is not None:
            self._key = load_private_key(self._key_file.read_bytes())
        else:
            log.warning("no AIOP_SECRETS_KEY_FILE: stored secrets cannot be opened here")
        self._kv = await open_bucket(js, KV_SECRETS, replicas=self._replicas)

    async def lookup(self, project: str, name: str) -> str | None:
        """The value of ``project``'s secret ``name``; None when there is none."""
        if self._kv is None:
            raise SecretUnavailable("the secret store is not open yet")
        key = secret_key(project, name)
        for delay in (*RETRY_DELAYS_S, None):
            try:
                entry = await self._kv.get(key)
                break
            except nats.js.errors.KeyNotFoundError:
                return None
            except Exception as exc:  # the bus, reconnecting or gone
                if delay is None:
                    raise SecretUnavailable(
                        f"the secret store did not answer: {type(exc).__name__}"
                    ) from None
                await asyncio.sleep(delay)
        if not entry.value:
            return None
        try:
            stored = decode_stored(entry.value)
        except msgspec.DecodeError:
            raise SecretUnavailable("stored, but not as a sealed secret") from None
        if self._key is None:
            raise SecretUnavailable("stored, but this executor has no key to open it")
        try:
            return open_sealed(self._key, stored.sealed, key.encode()).decode()
        except CannotOpen:
            mine = key_id(self._key.public_key())
            why = (
                f"sealed to key {stored.key_id}, this executor holds {mine}"
                if stored.key_id != mine
                else "it does not open under this name: altered or moved"
            )
            raise SecretUnavailable(f"stored, but cannot be opened: {why}") from None
