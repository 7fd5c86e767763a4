"""auth: signs access tokens for API keys, publishes its JWKS, answers authorize queries."""

import asyncio
from pathlib import Path

from pydantic import AliasChoices, Field

from aiop.auth.handlers import AuthHandlers
from aiop.contracts.endpoints import (
    AGENT_TOKEN,
    AUTHORIZE,
    GRANT_PROJECT,
    ISSUE_KEY,
    ISSUE_TOKEN,
    JWKS,
    LIST_KEYS,
    REVOKE_KEY,
    STEP_TOKEN,
)
from aiop.servicekit import Service, ServiceSettings


class AuthSettings(ServiceSettings):
    auth_dir: Path = Path(".aiop/auth")  # AIOP_AUTH_DIR
    token_ttl_s: float = 900.0
    dev_key_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("AIOP_AUTH_DEV_KEY_FILE", "dev_key_file")
    )


def build(settings: AuthSettings) -> Service:
    svc = Service("auth", settings)
    h = AuthHandlers(settings.auth_dir, settings.dev_key_file, settings.token_ttl_s)
    svc.on_start(h.open)
    svc.answer(JWKS, h.jwks)
    svc.answer(ISSUE_TOKEN, h.token)
    svc.answer(AUTHORIZE, h.authorize)
    svc.answer(LIST_KEYS, h.list_keys)
    svc.answer(ISSUE_KEY, h.issue_key)
    svc.answer(REVOKE_KEY, h.revoke_key)
    svc.answer(GRANT_PROJECT, h.grant_project)
    svc.answer(STEP_TOKEN, h.step_token)
    svc.answer(AGENT_TOKEN, h.agent_token)
    return svc


def run() -> None:
    asyncio.run(build(AuthSettings()).run())
