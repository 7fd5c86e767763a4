"""The auth endpoints over a real nats-server."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import msgspec
import nats
import pytest
from nats.aio.client import Client

from aiop.auth.main import AuthSettings, build
from aiop.contracts.endpoints import GRANT_PROJECT, STEP_TOKEN
from aiop.contracts.queries import (
    AuthorizeReply,
    AuthorizeRequest,
    PrincipalProjects,
    ProjectGrant,
    StepTokenRequest,
    TokenReply,
    TokenRequest,
)
from aiop.contracts.subjects import AUTH_AUTHORIZE, AUTH_JWKS, AUTH_TOKEN
from aiop.servicekit.rpc import QueryFailed, request, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    settings = AuthSettings(
        nats_url=nats_url, auth_dir=tmp_path / "auth", dev_key_file=tmp_path / "dev.key"
    )
    app = build(settings)
    task = asyncio.create_task(app.run())
    client = await nats.connect(nats_url)
    await wait_ready(client, "auth", timeout=10)
    yield client
    await client.close()
    app.exit()
    await task


async def test_token_for_the_dev_key_verifies_with_the_jwks(nc: Client, tmp_path: Path) -> None:
    dev_key = (tmp_path / "dev.key").read_text().strip()
    reply = msgspec.json.decode(
        await request(nc, AUTH_TOKEN, TokenRequest(api_key=dev_key)), type=TokenReply
    )
    assert (reply.principal, reply.projects) == ("dev", ["default"])
    jwks = jwt.PyJWKSet.from_dict(msgspec.json.decode(await request(nc, AUTH_JWKS, {})))
    kid = jwt.get_unverified_header(reply.token)["kid"]
    claims = jwt.decode(
        reply.token, jwks[kid].key, algorithms=["EdDSA"], audience="aiop", issuer="aiop-auth"
    )
    assert claims["sub"] == "dev"
    assert claims["exp"] == int(reply.expires_at.timestamp())
    assert claims["exp"] - claims["iat"] == 900


async def test_unknown_key_is_401(nc: Client) -> None:
    with pytest.raises(QueryFailed) as failed:
        await request(nc, AUTH_TOKEN, TokenRequest(api_key="aiop_nope"))
    assert failed.value.code == 401


async def test_authorize_follows_the_principals_projects(nc: Client) -> None:
    async def ask(principal: str, project: str) -> AuthorizeReply:
        req = AuthorizeRequest(principal=principal, project=project, action="workflow:submit")
        return msgspec.json.decode(await request(nc, AUTH_AUTHORIZE, req), type=AuthorizeReply)

    assert (await ask("dev", "default")).allowed
    assert not (await ask("dev", "secret")).allowed
    assert not (await ask("mallory", "default")).allowed


async def test_projects_granted_limit_tokens_and_step_tokens(nc: Client, tmp_path: Path) -> None:
    dev_key = (tmp_path / "dev.key").read_text().strip()

    async def token(projects: list[str] | None) -> TokenReply:
        ask = TokenRequest(api_key=dev_key, projects=projects)
        return msgspec.json.decode(await request(nc, AUTH_TOKEN, ask), type=TokenReply)

    with pytest.raises(QueryFailed) as outside:
        await token(["lab"])
    assert outside.value.code == 403
    granted = await request(nc, GRANT_PROJECT.subject, ProjectGrant(principal="dev", project="lab"))
    assert msgspec.json.decode(granted, type=PrincipalProjects).projects == ["default", "lab"]
    assert (await token(None)).projects == ["default", "lab"]
    assert (await token(["lab"])).projects == ["lab"]  # limited to what it asked for

    async def step_token(principal: str, project: str) -> TokenReply:
        ask = StepTokenRequest(principal=principal, project=project, workflow_id="wf", ttl_s=60)
        return msgspec.json.decode(await request(nc, STEP_TOKEN.subject, ask), type=TokenReply)

    step = await step_token("dev", "lab")
    assert step.projects == ["lab"]
    claims = jwt.decode(step.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60
    for principal, project in (("dev", "secret"), ("mallory", "default")):
        with pytest.raises(QueryFailed) as refused:
            await step_token(principal, project)
        assert refused.value.code == 403
