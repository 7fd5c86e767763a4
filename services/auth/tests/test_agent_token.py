"""Agent tokens (aiop.auth.token.agent.v1) over a real nats-server: one project, the agent
and its capabilities in the claims, a lifetime capped; and no agent claims in any other
token."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import msgspec
import nats
import pytest
from nats.aio.client import Client

from aiop.auth.domain.tokens import token_claims
from aiop.auth.main import AuthSettings, build
from aiop.contracts.agents import AGENT_TOKEN_TTL_S
from aiop.contracts.endpoints import AGENT_TOKEN, GRANT_PROJECT
from aiop.contracts.queries import AgentTokenRequest, ProjectGrant, TokenReply, TokenRequest
from aiop.contracts.subjects import AUTH_JWKS, AUTH_TOKEN
from aiop.servicekit.rpc import QueryFailed, request, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    app = build(AuthSettings(nats_url=nats_url, auth_dir=tmp_path / "auth",
                             dev_key_file=tmp_path / "dev.key"))  # fmt: skip
    task = asyncio.create_task(app.run())
    client = await nats.connect(nats_url)
    await wait_ready(client, "auth", timeout=10)
    yield client
    await client.close()
    app.exit()
    await task


async def agent_token(nc: Client, **given: Any) -> TokenReply:
    fields = {"principal": "dev", "project": "default", "agent_id": "ag-0123456789abcdef",
              "capabilities": ["summarize", "translate"], "ttl_s": 600.0, **given}  # fmt: skip
    reply = await request(nc, AGENT_TOKEN.subject, AgentTokenRequest(**fields))
    return msgspec.json.decode(reply, type=TokenReply)


async def verified(nc: Client, token: str) -> dict[str, Any]:
    jwks = jwt.PyJWKSet.from_dict(msgspec.json.decode(await request(nc, AUTH_JWKS, {})))
    key = jwks[jwt.get_unverified_header(token)["kid"]].key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["EdDSA"], audience="aiop",
                                        issuer="aiop-auth")  # fmt: skip
    return claims


async def test_an_agent_token_names_the_agent_its_capabilities_and_one_project(
    nc: Client,
) -> None:
    await request(nc, GRANT_PROJECT.subject, ProjectGrant(principal="dev", project="lab"))
    reply = await agent_token(nc)
    assert (reply.principal, reply.projects) == ("dev", ["default"])  # not lab too
    claims = await verified(nc, reply.token)
    assert claims["sub"] == "dev"
    assert claims["projects"] == ["default"]
    assert claims["agent"] == "ag-0123456789abcdef"
    assert claims["capabilities"] == ["summarize", "translate"]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["exp"] == int(reply.expires_at.timestamp())
    longest = await verified(nc, (await agent_token(nc, ttl_s=10 * 24 * 3600)).token)
    assert longest["exp"] - longest["iat"] == AGENT_TOKEN_TTL_S


async def test_an_agent_token_needs_the_principals_project_and_a_capability(
    nc: Client,
) -> None:
    for given, code in (
        ({"project": "secret"}, 403),
        ({"principal": "mallory"}, 403),
        ({"capabilities": []}, 422),
        ({"capabilities": ["a.b"]}, 422),
        ({"agent_id": "ag 1"}, 422),
    ):
        with pytest.raises(QueryFailed) as refused:
            await agent_token(nc, **given)
        assert refused.value.code == code, given


async def test_other_tokens_carry_no_agent_claims(nc: Client, tmp_path: Path) -> None:
    dev_key = (tmp_path / "dev.key").read_text().strip()
    reply = await request(nc, AUTH_TOKEN, TokenRequest(api_key=dev_key))
    claims = await verified(nc, msgspec.json.decode(reply, type=TokenReply).token)
    assert "agent" not in claims
    assert "capabilities" not in claims


def test_agent_claims_are_signed_only_when_given() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert set(token_claims("dev", ["default"], at, 60)) == {
        "sub", "projects", "iss", "aud", "iat", "exp",
    }  # fmt: skip
    claims = token_claims("dev", ["default"], at, 60, agent="ag-1", capabilities=["x"])
    assert (claims["agent"], claims["capabilities"]) == ("ag-1", ["x"])
