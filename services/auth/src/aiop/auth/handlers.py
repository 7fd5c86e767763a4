"""The three auth endpoints: request bytes -> domain -> reply bytes."""

from datetime import UTC, datetime

import msgspec

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.adapters.principals import PrincipalStore
from aiop.auth.domain.principals import authorize
from aiop.auth.domain.tokens import expires_at, token_claims
from aiop.contracts.queries import AuthorizeRequest, TokenReply, TokenRequest
from aiop.servicekit.rpc import QueryFailed

_token_request = msgspec.json.Decoder(TokenRequest)
_authorize_request = msgspec.json.Decoder(AuthorizeRequest)


class AuthHandlers:
    def __init__(self, key: SigningKey, principals: PrincipalStore, token_ttl_s: float) -> None:
        self.key = key
        self.principals = principals
        self.token_ttl_s = token_ttl_s
        self._jwks = msgspec.json.encode(key.jwks())  # fixed for the process's life

    async def jwks(self, _: bytes) -> bytes:
        return self._jwks

    async def token(self, data: bytes) -> bytes:
        principal = self.principals.by_api_key(_token_request.decode(data).api_key)
        if principal is None:
            raise QueryFailed(401, "unknown API key")
        claims = token_claims(
            principal.name, principal.projects, datetime.now(UTC), self.token_ttl_s
        )
        reply = TokenReply(
            token=self.key.sign(claims),
            expires_at=expires_at(claims),
            principal=principal.name,
            projects=principal.projects,
        )
        return msgspec.json.encode(reply)

    async def authorize(self, data: bytes) -> bytes:
        req = _authorize_request.decode(data)
        decision = authorize(self.principals.get(req.principal), req.project, req.action)
        return msgspec.json.encode(decision)
