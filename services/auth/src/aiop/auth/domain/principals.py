"""Who may call AIOP, and what they may do."""

import hashlib
import secrets

import msgspec

from aiop.contracts.queries import AuthorizeReply

DEV_PRINCIPAL = "dev"
DEV_PROJECTS = ("default",)


class Principal(msgspec.Struct, kw_only=True):
    name: str
    projects: list[str]
    # sha256 of each API key: keys are 32 random bytes, so a fast hash cannot be brute-forced.
    key_hashes: list[str] = []


def new_api_key() -> str:
    return "aiop_" + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
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
