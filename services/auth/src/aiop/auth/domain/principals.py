"""Who may call AIOP, and what they may do."""

import hashlib
import secrets
from datetime import datetime

import msgspec

from aiop.contracts.queries import AuthorizeReply

DEV_PRINCIPAL = "dev"
DEV_PROJECTS = ("default",)


class ApiKey(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One key of a principal: its hash (argon2), never the key itself."""

    id: str  # public: names the key for listing and revoking, and finds it on a request
    hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Principal(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    projects: list[str]
    keys: list[ApiKey] = []
    # SHA-256 hashes of keys issued before keys were hashed with argon2. The one key
    # that could be issued then, the development key, is rehashed at the next start.
    key_hashes: list[str] = []


def new_api_key() -> str:
    return "aiop_" + secrets.token_urlsafe(32)


def key_id(api_key: str) -> str:
    """The key's public id: 48 bits of a digest of 256 random bits, enough to find it
    among a principal's keys and useless to guess it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


def legacy_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def authorize(principal: Principal | None, project: str, action: str) -> AuthorizeReply:
    """Every action is allowed in a granted project; nothing outside it (no roles yet)."""
    if principal is None:
        return AuthorizeReply(allowed=False, reason="unknown principal")
    if project not in principal.projects:
        return AuthorizeReply(
            allowed=False, reason=f"{principal.name} has no access to project {project!r}"
        )
    return AuthorizeReply(allowed=True, reason=f"{action} granted in project {project!r}")
