"""Principals and their API keys, in ``principals.json`` in the auth directory.

A key is stored as an argon2 hash (argon2-cffi's defaults, RFC 9106's low-memory
profile), found by its public id, and can be revoked; a revoked key gets no more
tokens, and the tokens it got expire within their lifetime.
"""

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aiop.auth.adapters.files import create_private, write_private
from aiop.auth.domain.principals import (
    DEV_PRINCIPAL,
    DEV_PROJECTS,
    ApiKey,
    Principal,
    key_id,
    legacy_hash,
    new_api_key,
)

log = logging.getLogger("aiop.auth")
PRINCIPALS_FILE = "principals.json"


class PrincipalStore:
    """Loaded once; the file is rewritten whole on every change (changes are rare)."""

    def __init__(self, path: Path, principals: dict[str, Principal]) -> None:
        self.path = path
        self.principals = principals
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, auth_dir: Path, dev_key_file: Path | None = None) -> "PrincipalStore":
        path = auth_dir / PRINCIPALS_FILE
        principals: dict[str, Principal] = {}
        if path.exists():
            principals = msgspec.json.decode(path.read_bytes(), type=dict[str, Principal])
        store = cls(path, principals)
        if DEV_PRINCIPAL not in principals:
            store.add(Principal(name=DEV_PRINCIPAL, projects=list(DEV_PROJECTS)))
        if dev_key_file is not None and dev_key_file.exists():
            store._rehash(DEV_PRINCIPAL, dev_key_file.read_text().strip())
        elif dev_key_file is not None:
            # Only hashes are kept, so an earlier dev key cannot be shown again: issue a new
            # one for whoever (aiop up, the CLI) reads this file.
            key, _ = store.issue_key(DEV_PRINCIPAL)
            if create_private(dev_key_file, (key + "\n").encode()):
                log.info("wrote the development API key to %s", dev_key_file)
        return store

    def add(self, principal: Principal) -> None:
        with self._lock:
            self.principals[principal.name] = principal
            self._save()

    def issue_key(self, name: str) -> tuple[str, ApiKey]:
        """A new API key for ``name``, and its record; only the hash is stored."""
        key = new_api_key()
        record = ApiKey(id=key_id(key), hash=self._hasher.hash(key), created_at=_now())
        with self._lock:
            self.principals[name].keys.append(record)
            self._save()
        return key, record

    def revoke(self, name: str, id: str) -> ApiKey | None:
        """Revoke ``name``'s key ``id``; the record, or None if it has no such key."""
        with self._lock:
            principal = self.principals.get(name)
            record = next((k for k in (principal.keys if principal else []) if k.id == id), None)
            if record is not None and record.active:
                record.revoked_at = _now()
                self._save()
        return record

    def grant(self, name: str, project: str) -> Principal | None:
        """Let ``name`` into ``project`` (its creator, say); None if there is no such
        principal."""
        with self._lock:
            principal = self.principals.get(name)
            if principal is not None and project not in principal.projects:
                principal.projects.append(project)
                self._save()
        return principal

    def by_api_key(self, api_key: str) -> Principal | None:
        """The principal holding ``api_key`` among its active keys, checked with argon2."""
        wanted = key_id(api_key)
        for principal in self.principals.values():
            for record in principal.keys:
                if record.id == wanted and record.active and self._verifies(record, api_key):
                    return principal
        return None

    def get(self, name: str) -> Principal | None:
        return self.principals.get(name)

    def _verifies(self, record: ApiKey, api_key: str) -> bool:
        try:
            return self._hasher.verify(record.hash, api_key)
        except (VerificationError, InvalidHashError):
            return False

    def _rehash(self, name: str, api_key: str) -> None:
        """Move a key kept as SHA-256 to argon2, now that the key itself is at hand; drop
        the SHA-256 hashes no key at hand can move (none could be issued but this one)."""
        principal = self.principals[name]
        if not principal.key_hashes:
            return
        with self._lock:
            if legacy_hash(api_key) in principal.key_hashes:
                hashed = self._hasher.hash(api_key)
                principal.keys.append(ApiKey(id=key_id(api_key), hash=hashed, created_at=_now()))
            log.info("moved %s's API keys from SHA-256 to argon2 hashes", name)
            principal.key_hashes = []
            self._save()

    def _save(self) -> None:
        write_private(self.path, msgspec.json.format(msgspec.json.encode(self.principals)))


def _now() -> datetime:
    return datetime.now(UTC)
