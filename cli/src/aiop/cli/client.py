"""The gateway as seen from the CLI: its URL and a bearer token, found without configuration."""

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from aiop.cli.stack import NoPlatform, find_state_dir, load_stack


class ApiError(RuntimeError):
    """A problem-details answer from the gateway."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or "request failed"
        errors = problem.get("errors")
        if errors:
            detail += "".join(f"\n  - {e if isinstance(e, str) else json.dumps(e)}" for e in errors)
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.problem = problem


def _cached_token(state_dir: Path, gateway_url: str) -> str:
    """A dev token from the stack's API key, reused until shortly before it expires."""
    cache = state_dir / "token.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("gateway_url") == gateway_url and data.get("expires", 0) > time.time() + 30:
            return str(data["token"])
    stack = load_stack()
    assert stack is not None
    api_key = Path(stack.dev_key_file).read_text().strip()
    reply = httpx.post(f"{gateway_url}/v1/tokens", json={"api_key": api_key}, timeout=10)
    if reply.status_code != 200:
        raise ApiError(reply.status_code, _problem(reply))
    body = reply.json()
    expires = _epoch(body["expires_at"])
    cache.write_text(
        json.dumps({"gateway_url": gateway_url, "token": body["token"], "expires": expires})
    )
    cache.chmod(0o600)
    return str(body["token"])


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _problem(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
        return body if isinstance(body, dict) else {"detail": str(body)}
    except ValueError:
        return {"detail": reply.text[:500] or reply.reason_phrase}


class Gateway:
    """A small synchronous client for the gateway's HTTP API."""

    def __init__(self) -> None:
        url = os.environ.get("AIOP_URL")
        token = os.environ.get("AIOP_TOKEN")
        if url is None:
            stack = load_stack()
            if stack is None:
                raise NoPlatform("no running platform: start one with `aiop up`, or set AIOP_URL")
            url = stack.gateway_url
        if token is None:
            state_dir = find_state_dir()
            if state_dir is None:
                raise NoPlatform("AIOP_URL is set but AIOP_TOKEN is not")
            token = _cached_token(state_dir, url)
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.http.request(method, path, **kwargs)
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.json()

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return str(self._call("POST", "/v1/workflows", json=spec, headers=headers)["workflow_id"])

    def keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/keys")["keys"])

    def new_key(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/keys")
        return result

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/keys/{key_id}")
        return result

    def status(self, workflow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/workflows/{workflow_id}")
        return result

    def cancel(self, workflow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/workflows/{workflow_id}/cancel")
        return result
