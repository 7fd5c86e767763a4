"""The three auth endpoints: decoded request -> domain -> reply."""

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.adapters.principals import PrincipalStore
from aiop.auth.domain.principals import ApiKey, authorize
from aiop.auth.domain.tokens import expires_at, token_claims
from aiop.contracts.queries import (
    ApiKeyList,
    ApiKeyView,
    AuthorizeReply,
    AuthorizeRequest,
    IssuedKey,
    KeyRevocation,
    KeysRequest,
    TokenReply,
    TokenRequest,
)
from aiop.servicekit.rpc import QueryFailed


class AuthHandlers:
    """The key and principals are read at start (``open``), not when the service is built."""

    key: SigningKey
    principals: PrincipalStore

    def __init__(self, auth_dir: Path, dev_key_file: Path | None, token_ttl_s: float) -> None:
        self.auth_dir = auth_dir
        self.dev_key_file = dev_key_file
        self.token_ttl_s = token_ttl_s

    async def open(self) -> None:
        self.key = SigningKey.load_or_create(self.auth_dir)
        self.principals = PrincipalStore.open(self.auth_dir, self.dev_key_file)
        self._jwks = msgspec.json.encode(self.key.jwks())  # fixed for the process's life

    async def jwks(self, _: bytes) -> bytes:
        return self._jwks

    async def token(self, ask: TokenRequest) -> TokenReply:
        principal = self.principals.by_api_key(ask.api_key)
        if principal is None:
            raise QueryFailed(401, "unknown API key")
        claims = token_claims(
            principal.name, principal.projects, datetime.now(UTC), self.token_ttl_s
        )
        return TokenReply(
            token=self.key.sign(claims),
            expires_at=expires_at(claims),
            principal=principal.name,
            projects=principal.projects,
        )

    async def authorize(self, ask: AuthorizeRequest) -> AuthorizeReply:
        return authorize(self.principals.get(ask.principal), ask.project, ask.action)

    async def list_keys(self, ask: KeysRequest) -> ApiKeyList:
        principal = self.principals.get(ask.principal)
        return ApiKeyList(keys=[_view(k) for k in (principal.keys if principal else [])])

    async def issue_key(self, ask: KeysRequest) -> IssuedKey:
        if self.principals.get(ask.principal) is None:
            raise QueryFailed(404, f"no principal {ask.principal!r}")
        key, record = self.principals.issue_key(ask.principal)
        return IssuedKey(key_id=record.id, api_key=key, created_at=record.created_at)

    async def revoke_key(self, ask: KeyRevocation) -> ApiKeyView:
        record = self.principals.revoke(ask.principal, ask.key_id)
        if record is None:
            raise QueryFailed(404, f"{ask.principal} has no API key {ask.key_id}")
        return _view(record)


def _view(record: ApiKey) -> ApiKeyView:
    return ApiKeyView(key_id=record.id, created_at=record.created_at, revoked_at=record.revoked_at)
