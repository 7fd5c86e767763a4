"""auth: signs access tokens for API keys, publishes its JWKS, answers authorize queries."""

import asyncio
from pathlib import Path

from faststream import FastStream
from pydantic import AliasChoices, Field

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.adapters.principals import PrincipalStore
from aiop.auth.handlers import AuthHandlers
from aiop.contracts.subjects import AUTH_AUTHORIZE, AUTH_JWKS, AUTH_TOKEN
from aiop.servicekit import ServiceSettings, make_broker, setup_tracing
from aiop.servicekit.app import service_app
from aiop.servicekit.rpc import Handler


class AuthSettings(ServiceSettings):
    auth_dir: Path = Path(".aiop/auth")  # AIOP_AUTH_DIR
    token_ttl_s: float = 900.0
    dev_key_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("AIOP_AUTH_DEV_KEY_FILE", "dev_key_file")
    )


def build(settings: AuthSettings) -> FastStream:
    provider = setup_tracing("auth", settings.trace_dir)
    broker, _ = make_broker("auth", settings.nats_url, provider)
    h = AuthHandlers(
        SigningKey.load_or_create(settings.auth_dir),
        PrincipalStore.open(settings.auth_dir, settings.dev_key_file),
        settings.token_ttl_s,
    )
    endpoints: dict[str, tuple[str, Handler]] = {
        "jwks": (AUTH_JWKS, h.jwks),
        "token": (AUTH_TOKEN, h.token),
        "authorize": (AUTH_AUTHORIZE, h.authorize),
    }
    return service_app("auth", broker, settings, endpoints=endpoints)


def main() -> None:
    asyncio.run(build(AuthSettings()).run())
