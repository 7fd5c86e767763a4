"""The console's sessions against the gateway's app (auth running on a real nats-server):
sign-in with an API key, the cookie it sets, the key kept sealed, CSRF on every change,
signing out, and sessions limited to a project."""

import re
from pathlib import Path

import httpx
import pytest

from aiop.contracts.subjects import KV_CONSOLE_SESSIONS

from .conftest import Env

pytestmark = pytest.mark.integration


def dev_key(env: Env) -> str:
    return (env.auth_dir.parent / "dev.key").read_text().strip()


async def signed_in(env: Env, **form: str) -> tuple[httpx.Response, str]:
    """Sign in with the dev key; the answer and the CSRF token a page then carries."""
    reply = await env.client.post("/ui/login", data={"api_key": dev_key(env), **form})
    assert reply.status_code == 303, reply.text
    page = await env.client.get("/ui/runs/no-such-run")  # any page: the header's form
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return reply, found.group(1)


async def test_a_page_without_a_session_asks_to_sign_in(env: Env) -> None:
    reply = await env.client.get("/ui/?state=failed")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/ui/login?next=/ui/%3Fstate%3Dfailed"
    form = await env.client.get("/ui/login")
    assert form.status_code == 200
    assert "script-src 'self'" in form.headers["content-security-policy"]


async def test_a_wrong_key_is_refused_on_the_form(env: Env) -> None:
    reply = await env.client.post("/ui/login", data={"api_key": "aiop_not-a-key"})
    assert reply.status_code == 401
    assert "unknown API key" in reply.text
    assert "set-cookie" not in reply.headers


async def test_signing_in_sets_a_strict_httponly_cookie_and_seals_the_key(env: Env) -> None:
    reply, _ = await signed_in(env, next="/ui/fleet")
    assert reply.headers["location"] == "/ui/fleet"
    cookie = reply.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=strict", "path=/ui"):
        assert flag in cookie, cookie
    kv = await env.nc.jetstream().key_value(KV_CONSOLE_SESSIONS)
    keys = await kv.keys()
    assert len(keys) == 1
    stored = (await kv.get(keys[0])).value or b""
    session_id = env.client.cookies["aiop_session"]
    assert dev_key(env).encode() not in stored  # sealed
    assert session_id.encode() not in stored
    assert session_id not in keys[0]


async def test_next_never_leads_to_another_site(env: Env) -> None:
    reply = await env.client.post(
        "/ui/login", data={"api_key": dev_key(env), "next": "//evil.example/ui/"}
    )
    assert reply.headers["location"] == "/ui/"


async def test_a_change_without_this_sessions_csrf_token_is_refused(env: Env) -> None:
    _, csrf = await signed_in(env)
    cancel = "/ui/runs/wf-1/cancel"
    assert (await env.client.post(cancel)).status_code == 403
    assert (await env.client.post(cancel, data={"csrf": "forged"})).status_code == 403
    from_elsewhere = await env.client.post(
        cancel, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert from_elsewhere.status_code == 403
    assert "another site" in from_elsewhere.text
    accepted = await env.client.post(cancel, data={"csrf": csrf})
    assert accepted.status_code == 303  # through to the API, which answers what it knows
    by_header = await env.client.post(cancel, headers={"X-CSRF-Token": csrf})
    assert by_header.status_code == 303


async def test_signing_out_ends_the_session_everywhere(env: Env) -> None:
    _, csrf = await signed_in(env)
    session_id = env.client.cookies["aiop_session"]
    assert (await env.client.post("/ui/logout", data={"csrf": csrf})).status_code == 303
    again = await env.client.get("/ui/runs/wf-1", cookies={"aiop_session": session_id})
    assert again.status_code == 303  # the same cookie, kept elsewhere, is worth nothing


async def test_a_session_limited_to_a_project_asks_only_for_its_tokens(env: Env) -> None:
    await signed_in(env, project="default")
    refused = await env.client.post(
        "/ui/login", data={"api_key": dev_key(env), "project": "not-mine"}
    )
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers


def test_the_console_ships_its_own_files_only(tmp_path: Path) -> None:
    """No page loads anything from elsewhere: every src and href is the console's own."""
    templates = Path(__file__).parents[1] / "src/aiop/gateway/console/templates"
    for page in templates.glob("*.html"):
        text = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), page.name
        assert "<script>" not in text, page.name
        assert " style=" not in text, page.name
