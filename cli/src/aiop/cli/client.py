"""The gateway as seen from the CLI: its URL and a bearer token, found without
configuration, and the SDK's client (``aiop.client``) for every call. One client, not two:
this module only finds the platform and adapts a few of the CLI's call shapes."""

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

from aiop.cli.stack import NoPlatform, find_state_dir, load_stack
from aiop.client import ApiError, Client
from aiop.client.types import EventPage, TokenReply, WorkflowPage

__all__ = ["ApiError", "Credentials", "Gateway", "credentials", "forget_token", "new_token"]


def _dev_key() -> tuple[str, str]:
    """(the running stack's gateway URL, its development API key)."""
    stack = load_stack()
    if stack is None:
        raise NoPlatform("no running platform: start one with `aiop up`")
    return stack.gateway_url, Path(stack.dev_key_file).read_text().strip()


def _cached_token(state_dir: Path, gateway_url: str) -> str:
    """A dev token from the stack's API key, reused until shortly before it expires."""
    cache = state_dir / "token.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("gateway_url") == gateway_url and data.get("expires", 0) > time.time() + 30:
            return str(data["token"])
    _, api_key = _dev_key()
    with Client(gateway_url, timeout=10) as anonymous:
        anonymous.keep_token(anonymous.create_token(api_key))
        token, expires = anonymous.token, anonymous.token_expires
    cache.write_text(json.dumps({"gateway_url": gateway_url, "token": token, "expires": expires}))
    cache.chmod(0o600)
    return str(token)


def new_token(projects: list[str] | None) -> TokenReply:
    """A token for the platform's API key (limited to ``projects``, if given)."""
    gateway_url, api_key = _dev_key()
    with Client(gateway_url, timeout=10) as anonymous:
        return anonymous.create_token(api_key, projects)


def forget_token() -> None:
    """Drop the cached token: the next command gets one naming the principal's projects
    as they are now (after creating a project, say)."""
    state_dir = find_state_dir()
    if state_dir is not None:
        (state_dir / "token.json").unlink(missing_ok=True)


class Credentials(NamedTuple):
    url: str
    api_key: str | None
    token: str | None


def credentials() -> Credentials:
    """The gateway ``Gateway`` finds, and what a client that lives long authenticates
    with: AIOP_TOKEN as it is, or else the running stack's API key, which the client
    exchanges again whenever its token is about to expire (a token lasts minutes, an
    agent's MCP server all day)."""
    url = os.environ.get("AIOP_URL")
    token = os.environ.get("AIOP_TOKEN")
    stack = load_stack()
    if url is None:
        if stack is None:
            raise NoPlatform("no running platform: start one with `aiop up`, or set AIOP_URL")
        url = stack.gateway_url
    if token is not None:
        return Credentials(url, None, token)
    if stack is None:
        raise NoPlatform("AIOP_URL is set but AIOP_TOKEN is not")
    return Credentials(url, Path(stack.dev_key_file).read_text().strip(), None)


class Gateway(Client):
    """The SDK's client for the platform this directory runs (or ``AIOP_URL`` and
    ``AIOP_TOKEN``), marking what it starts as started from the CLI."""

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
        # The gateway records that runs this client starts came from the CLI.
        super().__init__(url, token=token, headers={"AIOP-Origin": "cli"}, timeout=30)
        self.url = self.base_url

    # The CLI's call shapes, over the SDK's calls.

    def workflows(self, params: dict[str, Any]) -> WorkflowPage:
        """One page of GET /v1/workflows."""
        return self.list_workflows(**params)

    def events(self, params: dict[str, Any]) -> EventPage:
        """One page of GET /v1/events."""
        return self.list_events(**params)

    def trigger(self, method: str, name: str, project: str) -> Any:
        """GET /v1/triggers ("" for all) or GET, DELETE /v1/triggers/{name}."""
        path = f"/v1/triggers/{name}" if name else "/v1/triggers"
        return self.request(method, path, params={"project": project})

    def schedules(self, method: str, path: str, project: str, **kwargs: Any) -> Any:
        """``/v1/schedules{path}?project=`` (aiop schedules)."""
        return self.request(method, f"/v1/schedules{path}", params={"project": project}, **kwargs)
