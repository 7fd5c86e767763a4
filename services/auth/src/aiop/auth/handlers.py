"""The three auth endpoints: decoded request -> domain -> reply."""

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.adapters.principals import PrincipalStore
from aiop.auth.domain.principals import ApiKey, authorize
from aiop.auth.domain.tokens import expires_at, token_claims
from aiop.contracts.agents import AGENT_TOKEN_TTL_S, MAX_CAPABILITIES
from aiop.contracts.queries import (
    AgentTokenRequest,
    ApiKeyList,
    ApiKeyView,
    AuthorizeReply,
    AuthorizeRequest,
    IssuedKey,
    KeyRevocation,
    KeysRequest,
    PrincipalProjects,
    ProjectGrant,
    StepTokenRequest,
    TokenReply,
    TokenRequest,
)
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.servicekit.rpc import QueryFailed

MAX_STEP_TOKEN_S = 6 * 3600.0


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
        projects = principal.projects
        if ask.projects is not None:  # a token limited to some of them
            outside = [p for p in ask.projects if p not in principal.projects]
            if outside or not ask.projects:
                raise QueryFailed(403, f"the key has no access to project {outside[0]!r}"
                                  if outside else "a token needs at least one project")  # fmt: skip
            projects = [p for p in principal.projects if p in ask.projects]
        claims = token_claims(principal.name, projects, datetime.now(UTC), self.token_ttl_s)
        return TokenReply(
            token=self.key.sign(claims),
            expires_at=expires_at(claims),
            principal=principal.name,
            projects=projects,
        )

    async def step_token(self, ask: StepTokenRequest) -> TokenReply:
        """A token for a step that calls the API: whoever submitted the workflow, limited
        to its project, for the step's time (at most MAX_STEP_TOKEN_S). The executor
        asks; nobody else may (the bus's permissions)."""
        principal = self.principals.get(ask.principal)
        if principal is None or ask.project not in principal.projects:
            raise QueryFailed(403, f"{ask.principal} has no access to project {ask.project!r}")
        ttl = min(max(ask.ttl_s, 1.0), MAX_STEP_TOKEN_S)
        claims = token_claims(principal.name, [ask.project], datetime.now(UTC), ttl)
        return TokenReply(token=self.key.sign(claims), expires_at=expires_at(claims),
                          principal=principal.name, projects=[ask.project])  # fmt: skip

    async def agent_token(self, ask: AgentTokenRequest) -> TokenReply:
        """A token for an agent the principal registered: its project only, naming the
        agent and its capabilities, for at most AGENT_TOKEN_TTL_S. The gateway asks, at
        registration and for each renewal, so a principal who lost the project can no
        longer keep its agents' tokens alive."""
        principal = self.principals.get(ask.principal)
        if principal is None or ask.project not in principal.projects:
            raise QueryFailed(403, f"{ask.principal} has no access to project {ask.project!r}")
        if not 0 < len(ask.capabilities) <= MAX_CAPABILITIES:
            raise QueryFailed(422, f"an agent offers 1 to {MAX_CAPABILITIES} capabilities")
        try:
            for name, what in [(ask.agent_id, "agent id")] + [
                (c, "capability") for c in ask.capabilities
            ]:
                check_token(name, what)
        except InvalidToken as exc:
            raise QueryFailed(422, str(exc)) from exc
        ttl = min(max(ask.ttl_s, 1.0), AGENT_TOKEN_TTL_S)
        claims = token_claims(principal.name, [ask.project], datetime.now(UTC), ttl,
                              agent=ask.agent_id, capabilities=list(ask.capabilities))  # fmt: skip
        return TokenReply(token=self.key.sign(claims), expires_at=expires_at(claims),
                          principal=principal.name, projects=[ask.project])  # fmt: skip

    async def grant_project(self, ask: ProjectGrant) -> PrincipalProjects:
        principal = self.principals.grant(ask.principal, ask.project)
        if principal is None:
            raise QueryFailed(404, f"no principal {ask.principal!r}")
        return PrincipalProjects(principal=principal.name, projects=list(principal.projects))

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
