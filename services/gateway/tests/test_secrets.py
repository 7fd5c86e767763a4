"""Secrets through the gateway against a real nats-server: stored sealed to the executors'
key, listed without values, scoped to the caller's projects (docs/security.md, "Secrets")."""

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts.secrets import (
    MAX_SECRET_BYTES,
    decode_stored,
    load_private_key,
    open_sealed,
    secret_key,
)
from aiop.contracts.subjects import KV_SECRETS

from .conftest import Env, running

pytestmark = pytest.mark.integration

VALUE = "hunter2-canary-7f3a9c"


async def stored_bytes(env: Env) -> bytes:
    """Everything the bucket's stream holds, every message of it, as one blob."""
    js = env.nc.jetstream()
    info = await js.stream_info(f"KV_{KV_SECRETS}")
    blob = b""
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(f"KV_{KV_SECRETS}", seq)
        except Exception:  # purged or deleted
            continue
        blob += (msg.subject or "").encode() + (msg.data or b"")
    return blob


async def test_put_creates_then_replaces_and_never_answers_the_value(env: Env) -> None:
    created = await env.client.put("/v1/secrets/API_TOKEN", json={"value": VALUE},
                                   headers=env.bearer())  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "API_TOKEN"
    assert body["project"] == "default"
    assert body["created_at"] == body["updated_at"]
    assert VALUE not in created.text

    replaced = await env.client.put("/v1/secrets/API_TOKEN", json={"value": VALUE + "-2"},
                                    headers=env.bearer())  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created_at"] == body["created_at"]
    assert replaced.json()["updated_at"] > body["updated_at"]
    assert VALUE not in replaced.text

    listed = await env.client.get("/v1/secrets", headers=env.bearer())
    assert listed.status_code == 200, listed.text
    assert listed.json()["project"] == "default"
    (only,) = listed.json()["secrets"]
    assert set(only) == {"name", "project", "created_at", "updated_at"}
    assert only["name"] == "API_TOKEN"
    assert VALUE not in listed.text


async def test_the_stored_value_is_sealed_to_the_executors_key_and_bound_to_its_name(
    env: Env,
) -> None:
    reply = await env.client.put("/v1/secrets/DB_PASSWORD?project=default",
                                 json={"value": VALUE}, headers=env.bearer())  # fmt: skip
    assert reply.status_code == 201, reply.text
    blob = await stored_bytes(env)
    raw = VALUE.encode()
    for form in (raw, raw.hex().encode(), base64.b64encode(raw), base64.b64encode(raw)[:-2]):
        assert form not in blob
    kv = await env.nc.jetstream().key_value(KV_SECRETS)
    stored = decode_stored((await kv.get(secret_key("default", "DB_PASSWORD"))).value or b"")
    # Only the executors' private key opens it, and only under its own name.
    private = load_private_key(env.secrets_key_file.read_bytes())
    assert open_sealed(private, stored.sealed, b"default.DB_PASSWORD") == raw
    with pytest.raises(ValueError):
        open_sealed(private, stored.sealed, b"default.API_TOKEN")


async def test_delete_removes_it_and_an_unknown_one_is_404(env: Env) -> None:
    await env.client.put("/v1/secrets/GONE", json={"value": VALUE}, headers=env.bearer())
    deleted = await env.client.delete("/v1/secrets/GONE", headers=env.bearer())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["name"] == "GONE"
    again = await env.client.delete("/v1/secrets/GONE", headers=env.bearer())
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")
    listed = await env.client.get("/v1/secrets", headers=env.bearer())
    assert listed.json()["secrets"] == []
    assert VALUE.encode() not in await stored_bytes(env)
    # Stored anew after a delete, it is created again.
    back = await env.client.put("/v1/secrets/GONE", json={"value": VALUE}, headers=env.bearer())
    assert back.status_code == 201, back.text


async def test_another_projects_caller_gets_404_and_changes_nothing(env: Env) -> None:
    await env.client.put("/v1/secrets/MINE", json={"value": VALUE}, headers=env.bearer())
    key = SigningKey.load_or_create(env.auth_dir)
    intruder = env.bearer(key.sign(token_claims("intruder", ["other"], datetime.now(UTC), 600)))
    for method, path, body in (
        ("PUT", "/v1/secrets/MINE?project=default", {"value": "overwritten"}),
        ("GET", "/v1/secrets?project=default", None),
        ("DELETE", "/v1/secrets/MINE?project=default", None),
    ):
        reply = await env.client.request(method, path, json=body, headers=intruder)
        assert reply.status_code == 404, (method, reply.text)
        assert "MINE" not in reply.json()["detail"]  # not even named
    # In a project of its token, auth decides (secret:read): it knows no such principal.
    theirs = await env.client.get("/v1/secrets?project=other", headers=intruder)
    assert theirs.status_code == 403, theirs.text
    mine = await env.client.get("/v1/secrets", headers=env.bearer())
    (only,) = mine.json()["secrets"]
    assert only["created_at"] == only["updated_at"]  # the intruder's PUT did not land


@pytest.mark.parametrize(
    "path", ["/v1/secrets/bad.name", "/v1/secrets/a*b", "/v1/secrets/" + "x" * 129,
             "/v1/secrets/ok?project=bad.project"],
)  # fmt: skip
async def test_bad_names_are_400(env: Env, path: str) -> None:
    for method, body in (("PUT", {"value": VALUE}), ("DELETE", None)):
        reply = await env.client.request(method, path, json=body, headers=env.bearer())
        assert reply.status_code == 400, (method, path, reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert VALUE not in reply.text


async def test_bad_values_are_refused_without_repeating_them(env: Env) -> None:
    for body, status in (
        ({"value": ""}, 422),
        ({"value": 42}, 422),
        ({"value": VALUE, "extra": 1}, 422),
        ({"value": VALUE + "\x00"}, 422),
        ({}, 422),
    ):
        reply = await env.client.put("/v1/secrets/X", json=body, headers=env.bearer())
        assert reply.status_code == status, (body, reply.text)
        assert VALUE not in reply.text
    not_json = await env.client.put("/v1/secrets/X", content=b'{"value": "' + VALUE.encode(),
                                    headers={**env.bearer(), "content-type": "application/json"})  # fmt: skip
    assert not_json.status_code == 400
    assert VALUE not in not_json.text
    assert (await env.client.get("/v1/secrets", headers=env.bearer())).json()["secrets"] == []


async def test_an_oversize_value_is_refused(nats_url: str, tmp_path: Path) -> None:
    # A body limit far above the value's, so that the value's own cap is what refuses.
    async with running(nats_url, tmp_path, max_body_bytes=1024 * 1024) as env:
        big = "é" * (MAX_SECRET_BYTES // 2 + 1)  # fewer characters than bytes
        reply = await env.client.put("/v1/secrets/BIG", json={"value": big}, headers=env.bearer())
        assert reply.status_code == 422, reply.text  # the value's limit, not the body's (413)
        assert str(MAX_SECRET_BYTES) in reply.json()["detail"]
        fits = "x" * MAX_SECRET_BYTES
        reply = await env.client.put("/v1/secrets/BIG", json={"value": fits}, headers=env.bearer())
        assert reply.status_code == 201, reply.text


async def test_without_a_public_key_nothing_is_stored(nats_url: str, tmp_path: Path) -> None:
    async with running(nats_url, tmp_path, secrets_public_key_file=None) as env:
        reply = await env.client.put("/v1/secrets/K", json={"value": VALUE}, headers=env.bearer())
        assert reply.status_code == 503, reply.text
        assert "AIOP_SECRETS_PUBLIC_KEY_FILE" in reply.json()["detail"]
