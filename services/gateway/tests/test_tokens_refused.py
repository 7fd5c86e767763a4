"""Every forged, altered, expired or misdirected token is refused with 401, against the
gateway with auth running on a real nats-server."""

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiop.auth.adapters.keys import SigningKey
from aiop.contracts.tokens import access_claims

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(token: str, index: int) -> dict[str, object]:
    chunk = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(chunk + "=" * (-len(chunk) % 4)))


def with_part(token: str, index: int, changes: dict[str, object]) -> str:
    """``token`` with its header (0) or claims (1) edited and the old signature kept."""
    parts = token.split(".")
    parts[index] = b64(json.dumps({**part(token, index), **changes}).encode())
    return ".".join(parts)


def forgeries(env: Env) -> dict[str, str]:
    key = SigningKey.load_or_create(env.auth_dir)
    kid = key.kid
    now = datetime.now(UTC)

    def signed(claims: dict[str, object], **header: object) -> str:
        return (
            key.sign(claims)
            if not header
            else jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": kid, **header})
        )

    good = {**json.loads(json.dumps(_claims(now))), "projects": ["default"]}
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned_header = b64(json.dumps({"alg": "none", "kid": kid, "typ": "JWT"}).encode())
    other_key = Ed25519PrivateKey.generate()
    return {
        "alg none": f"{unsigned_header}.{b64(json.dumps(good).encode())}.",
        # The public key used as an HMAC secret: the classic algorithm confusion.
        "HS256 with the public key": _hs256(good, public_pem, kid),
        "claims edited after signing": with_part(env.token, 1, {"projects": ["secret"]}),
        "header edited after signing": with_part(env.token, 0, {"typ": "other"}),
        "unknown kid": with_part(env.token, 0, {"kid": "not-a-key-of-auth"}),
        "no kid": jwt.encode(good, key.private, algorithm="EdDSA"),
        "another Ed25519 key": jwt.encode(good, other_key, algorithm="EdDSA", headers={"kid": kid}),
        "expired": signed({**good, "exp": int((now - timedelta(minutes=1)).timestamp())}),
        "wrong audience": signed({**good, "aud": "someone-else"}),
        "wrong issuer": signed({**good, "iss": "not-aiop-auth"}),
        "no subject": signed({k: v for k, v in good.items() if k != "sub"}),
        "no expiry": signed({k: v for k, v in good.items() if k != "exp"}),
    }


def _claims(now: datetime) -> dict[str, object]:
    claims = access_claims("dev", ["default"], now, 600)
    return {f: getattr(claims, f) for f in claims.__struct_fields__}


def _hs256(claims: dict[str, object], secret: bytes, kid: str) -> str:
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


async def test_every_forged_or_misdirected_token_is_401(env: Env) -> None:
    # The genuine token works, so each refusal below is the forgery's doing.
    assert (await env.client.get("/v1/workflows/abc", headers=env.bearer())).status_code in (
        404, 503,
    )  # fmt: skip
    for name, token in forgeries(env).items():
        for reply in (
            await env.client.get("/v1/workflows/abc", headers=env.bearer(token)),
            await env.client.post("/v1/workflows", json=GOOD, headers=env.bearer(token)),
        ):
            assert reply.status_code == 401, f"{name}: {reply.status_code} {reply.text}"
            assert reply.headers["content-type"] == "application/problem+json", name
            assert reply.headers["www-authenticate"].startswith("Bearer"), name
    assert await env.published() == 0  # no forgery got a workflow onto the bus
