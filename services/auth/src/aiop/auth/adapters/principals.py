"""Principals and their API key hashes, in ``principals.json`` in the auth directory."""

import logging
import threading
from pathlib import Path

import msgspec

from aiop.auth.adapters.files import create_private, write_private
from aiop.auth.domain.principals import (
    DEV_PRINCIPAL,
    DEV_PROJECTS,
    Principal,
    hash_api_key,
    new_api_key,
)

log = logging.getLogger("aiop.auth")
PRINCIPALS_FILE = "principals.json"


class PrincipalStore:
    """Loaded once; the file is rewritten whole on every change (changes are rare)."""

    def __init__(self, path: Path, principals: dict[str, Principal]) -> None:
        self.path = path
        self.principals = principals
        self._by_hash = {h: p for p in principals.values() for h in p.key_hashes}
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
        if dev_key_file is not None and not dev_key_file.exists():
            # Only hashes are kept, so an earlier dev key cannot be shown again: issue a new
            # one for whoever (aiop up, the CLI) reads this file.
            key = store.issue_key(DEV_PRINCIPAL)
            if create_private(dev_key_file, (key + "\n").encode()):
                log.info("wrote the development API key to %s", dev_key_file)
        return store

    def add(self, principal: Principal) -> None:
        with self._lock:
            self.principals[principal.name] = principal
            self._save()

    def issue_key(self, name: str) -> str:
        """A new API key for ``name``; only its hash is stored."""
        key = new_api_key()
        digest = hash_api_key(key)
        with self._lock:
            principal = self.principals[name]
            principal.key_hashes.append(digest)
            self._by_hash[digest] = principal
            self._save()
        return key

    def by_api_key(self, api_key: str) -> Principal | None:
        return self._by_hash.get(hash_api_key(api_key))

    def get(self, name: str) -> Principal | None:
        return self.principals.get(name)

    def _save(self) -> None:
        write_private(self.path, msgspec.json.format(msgspec.json.encode(self.principals)))
