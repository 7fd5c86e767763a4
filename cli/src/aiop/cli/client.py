"""The gateway as seen from the CLI: its URL and a bearer token, found without configuration."""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

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


def new_token(projects: list[str] | None) -> dict[str, Any]:
    """A token for the platform's API key (limited to ``projects``, if given)."""
    stack = load_stack()
    if stack is None:
        raise NoPlatform("no running platform: start one with `aiop up`")
    api_key = Path(stack.dev_key_file).read_text().strip()
    body: dict[str, Any] = {"api_key": api_key}
    if projects:
        body["projects"] = projects
    reply = httpx.post(f"{stack.gateway_url}/v1/tokens", json=body, timeout=10)
    if reply.status_code != 200:
        raise ApiError(reply.status_code, _problem(reply))
    return dict(reply.json())


def forget_token() -> None:
    """Drop the cached token: the next command gets one naming the principal's projects
    as they are now (after creating a project, say)."""
    state_dir = find_state_dir()
    if state_dir is not None:
        (state_dir / "token.json").unlink(missing_ok=True)


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
            base_url=self.url,
            # The gateway records that runs this client starts came from the CLI.
            headers={"Authorization": f"Bearer {token}", "AIOP-Origin": "cli"},
            timeout=30,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.http.request(method, path, **kwargs)
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.json()

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return str(self._call("POST", "/v1/workflows", json=spec, headers=headers)["workflow_id"])

    def templates(self, project: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/templates", params={"project": project})["templates"])

    def template(self, ref: str, project: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/templates/{ref}",
                                            params={"project": project})  # fmt: skip
        return result

    def register_template(
        self, name: str, template: dict[str, Any], project: str
    ) -> tuple[bool, dict[str, Any]]:
        """(whether that version is new, the template as stored)."""
        reply = self.http.put(f"/v1/templates/{name}", params={"project": project}, json=template)
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.status_code == 201, dict(reply.json())

    def run_template(
        self, ref: str, parameters: dict[str, Any], project: str, idempotency_key: str | None
    ) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        reply = self._call("POST", f"/v1/templates/{ref}/runs", params={"project": project},
                           json={"parameters": parameters}, headers=headers)  # fmt: skip
        return str(reply["workflow_id"])

    def keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/keys")["keys"])

    def new_key(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/keys")
        return result

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/keys/{key_id}")
        return result

    def set_secret(self, name: str, value: str, project: str) -> tuple[bool, dict[str, Any]]:
        """(whether it was created, the secret as stored: never its value)."""
        reply = self.http.put(f"/v1/secrets/{name}", params={"project": project},
                              json={"value": value})  # fmt: skip
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.status_code == 201, dict(reply.json())

    def secrets(self, project: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/secrets", params={"project": project})["secrets"])

    def delete_secret(self, name: str, project: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "DELETE", f"/v1/secrets/{name}", params={"project": project}
        )
        return result

    def workflows(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of GET /v1/workflows."""
        result: dict[str, Any] = self._call("GET", "/v1/workflows", params=params)
        return result

    def rerun(self, workflow_id: str, from_step: str | None, parameters: dict[str, Any]) -> str:
        body: dict[str, Any] = {"parameters": parameters}
        if from_step:
            body["from"] = from_step
        reply = self._call("POST", f"/v1/workflows/{workflow_id}/rerun", json=body)
        return str(reply["workflow_id"])

    def create_project(self, name: str, description: str) -> dict[str, Any]:
        body = {"name": name, "description": description}
        result: dict[str, Any] = self._call("POST", "/v1/projects", json=body)
        return result

    def projects(self, archived: bool) -> list[dict[str, Any]]:
        reply = self._call("GET", "/v1/projects", params={"archived": archived})
        return list(reply["projects"])

    def archive_project(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/projects/{name}/archive")
        return result

    def run_project(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/projects/{name}/runs")
        return result

    def project_run(self, name: str, set_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/projects/{name}/runs/{set_id}")
        return result

    def save_task(
        self, project: str, name: str, body: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """(whether it is new, the task as stored)."""
        reply = self.http.put(f"/v1/projects/{project}/tasks/{name}", json=body)
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.status_code == 201, dict(reply.json())

    def tasks(self, project: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/projects/{project}/tasks")["tasks"])

    def task(self, project: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/projects/{project}/tasks/{name}")
        return result

    def delete_task(self, project: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/projects/{project}/tasks/{name}")
        return result

    def run_task(self, project: str, name: str, parameters: dict[str, Any]) -> str:
        reply = self._call("POST", f"/v1/projects/{project}/tasks/{name}/runs",
                           json={"parameters": parameters})  # fmt: skip
        return str(reply["workflow_id"])

    def save_trigger(self, body: dict[str, Any], project: str) -> tuple[bool, dict[str, Any]]:
        """(whether it is new, the trigger as stored)."""
        reply = self.http.post("/v1/triggers", params={"project": project}, json=body)
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, _problem(reply))
        return reply.status_code == 201, dict(reply.json())

    def trigger(self, method: str, name: str, project: str) -> Any:
        """GET /v1/triggers ("" for all) or GET, DELETE /v1/triggers/{name}."""
        path = f"/v1/triggers/{name}" if name else "/v1/triggers"
        return self._call(method, path, params={"project": project})

    def events(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of GET /v1/events."""
        result: dict[str, Any] = self._call("GET", "/v1/events", params=params)
        return result

    def send_event(self, headers: dict[str, str], body: bytes, project: str) -> dict[str, Any]:
        """POST /v1/events in binary mode: the attributes as ce-* headers."""
        result: dict[str, Any] = self._call(
            "POST", "/v1/events", params={"project": project}, headers=headers, content=body
        )
        return result

    def status(self, workflow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/workflows/{workflow_id}")
        return result

    def cancel(self, workflow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/workflows/{workflow_id}/cancel")
        return result

    def logs(self, workflow_id: str, step: str | None = None) -> dict[str, Any]:
        params = {"step": step} if step else {}
        result: dict[str, Any] = self._call("GET", f"/v1/workflows/{workflow_id}/logs",
                                            params=params)  # fmt: skip
        return result

    def follow_logs(self, workflow_id: str, step: str | None = None) -> Iterator[dict[str, Any]]:
        """Each entry as it is stored, then ``{"end": state}`` once the workflow ended.
        A dropped connection is resumed after the last entry received."""
        params: dict[str, Any] = {"follow": "true", **({"step": step} if step else {})}
        last = ""
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with connect_sse(self.http, "GET", f"/v1/workflows/{workflow_id}/logs",
                                 params=params, headers=headers, timeout=None) as source:  # fmt: skip
                    if source.response.status_code >= 400:
                        source.response.read()
                        raise ApiError(source.response.status_code, _problem(source.response))
                    for event in source.iter_sse():
                        if event.event == "end":
                            yield {"end": json.loads(event.data)["state"]}
                            return
                        last = event.id or last
                        yield dict(json.loads(event.data))
            except httpx.TransportError:
                time.sleep(0.5)  # the gateway restarted or the network blinked: resume

    def schedules(self, method: str, path: str, project: str, **kwargs: Any) -> Any:
        """``/v1/schedules{path}?project=`` (aiop schedules)."""
        return self._call(method, f"/v1/schedules{path}", params={"project": project}, **kwargs)

    def cache_entries(self, project: str | None) -> dict[str, Any]:
        params = {"project": project} if project else {}
        result: dict[str, Any] = self._call("GET", "/v1/cache", params=params)
        return result

    def cache_remove(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/cache/{key}")
        return result

    def cache_prune(self, project: str | None, older_than_s: float | None) -> dict[str, Any]:
        params: dict[str, Any] = {"project": project} if project else {}
        if older_than_s is not None:
            params["older_than_s"] = older_than_s
        result: dict[str, Any] = self._call("DELETE", "/v1/cache", params=params)
        return result
