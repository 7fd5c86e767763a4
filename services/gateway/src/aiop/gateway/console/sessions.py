"""The console's sign-in sessions, in KV ``aiop_console_sessions`` so that any gateway
replica serves any page.

The browser holds only a random session id, in an HttpOnly cookie. The bucket's key is
the id's SHA-256, and the API key signed in with is kept sealed (AES-GCM) under a key
derived from the id: whoever can read the bucket can neither take over a session nor
read a key. The API key is kept at all because tokens last minutes and a session hours:
the session's client exchanges it for a new token when the old one runs out, exactly as
the CLI does.
"""

import base64
import contextlib
import hashlib
import secrets
import time
from dataclasses import dataclass

import msgspec
import nats.js.errors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nats.js.kv import KeyValue

SESSION_TTL_S = 8 * 3600.0  # the bucket's max age: no session outlives it


class StoredSession(msgspec.Struct, frozen=True, kw_only=True):
    principal: str
    projects: list[str]
    csrf: str  # sent back with every change: a form field or the X-CSRF-Token header
    sealed_key: str  # base64 of nonce + AES-GCM(API key)
    created_at: float


@dataclass(frozen=True)
class Session:
    id_hash: str
    principal: str
    projects: list[str]
    csrf: str
    api_key: str


def _key_for(session_id: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aiop console session")
    return hkdf.derive(session_id.encode())


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def seal(session_id: str, api_key: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key_for(session_id)).encrypt(nonce, api_key.encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def unseal(session_id: str, sealed_key: str) -> str:
    raw = base64.b64decode(sealed_key)
    return AESGCM(_key_for(session_id)).decrypt(raw[:12], raw[12:], None).decode()


class Sessions:
    def __init__(self) -> None:
        self.kv: KeyValue | None = None  # opened when the gateway's bus side starts

    def _bucket(self) -> KeyValue:
        if self.kv is None:
            raise RuntimeError("console sessions are not open yet")
        return self.kv

    async def create(
        self, api_key: str, principal: str, projects: list[str]
    ) -> tuple[str, Session]:
        """A new session: its id (for the cookie) and the session."""
        session_id = secrets.token_urlsafe(32)
        stored = StoredSession(
            principal=principal,
            projects=sorted(projects),
            csrf=secrets.token_urlsafe(32),
            sealed_key=seal(session_id, api_key),
            created_at=time.time(),
        )
        await self._bucket().put(id_hash(session_id), msgspec.json.encode(stored))
        return session_id, Session(id_hash(session_id), stored.principal, stored.projects,
                                   stored.csrf, api_key)  # fmt: skip

    async def find(self, session_id: str) -> Session | None:
        """The session the cookie names; None if unknown, expired or tampered with."""
        if not 20 <= len(session_id) <= 100:
            return None
        try:
            entry = await self._bucket().get(id_hash(session_id))
        except nats.js.errors.KeyNotFoundError:
            return None
        if not entry.value:
            return None
        stored = msgspec.json.decode(entry.value, type=StoredSession)
        if time.time() - stored.created_at > SESSION_TTL_S:
            return None
        try:
            api_key = unseal(session_id, stored.sealed_key)
        except Exception:  # a wrong id cannot open it
            return None
        return Session(id_hash(session_id), stored.principal, stored.projects, stored.csrf,
                       api_key)  # fmt: skip

    async def end(self, session_id: str) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self._bucket().delete(id_hash(session_id))
