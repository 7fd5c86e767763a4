"""API keys and tokens: the keys listed, a new one issued (its value shown once, on the
answer to the POST, never stored by the console), one revoked, and a short-lived token
issued for a key, as ``POST /v1/tokens`` does."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from aiop.client.errors import ApiError
from aiop.gateway.console.config import CONFIG, attempt, back, refused
from aiop.gateway.console.web import Console

KEYS = f"{CONFIG}/keys"


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=KEYS)

    @ui.get("")
    async def keys(request: Request) -> Response:
        session = await console.session(request)
        items, error = [], None
        try:
            items = list(await console.api(session=session).keys())
        except ApiError as exc:
            error = exc.detail or f"the API answered {exc.status}"
        return console.page(request, "config_keys.html", items=items, error=error,
                            notice=request.query_params.get("notice"))  # fmt: skip

    @ui.post("")
    async def new_key(request: Request) -> Response:
        api = console.api(session=await console.changing(request))
        try:
            issued = await api.new_key()
        except ApiError as exc:
            return back(KEYS, refused("issuing a key", exc))
        # Shown on this answer only: a reload or the back button does not show it again.
        return console.page(request, "config_secret_once.html", title="New API key",
                            what="API key", value=issued["api_key"],
                            facts={"key id": issued["key_id"], "created": issued["created_at"]},
                            back=KEYS)  # fmt: skip

    @ui.post("/{key_id}/revoke")
    async def revoke(request: Request, key_id: str) -> Response:
        api = console.api(session=await console.changing(request))
        notice = await attempt(lambda: api.revoke_key(key_id), f"key {key_id} revoked",
                               f"revoking key {key_id}")  # fmt: skip
        return back(KEYS, notice)

    @ui.post("/token")
    async def token(
        request: Request,
        api_key: Annotated[str, Form()] = "",
        projects: Annotated[str, Form()] = "",
    ) -> Response:
        api = console.api(session=await console.changing(request))
        if not api_key.strip():
            return back(KEYS, "a token is issued for an API key: paste the key")
        wanted = [p for p in projects.replace(",", " ").split() if p]
        try:
            reply = await api.create_token(api_key.strip(), wanted or None)
        except ApiError as exc:
            return back(KEYS, refused("issuing a token", exc))
        return console.page(request, "config_secret_once.html", title="New token",
                            what="token", value=reply["token"],
                            facts={"principal": reply["principal"],
                                   "projects": ", ".join(reply["projects"]),
                                   "expires": reply["expires_at"]}, back=KEYS)  # fmt: skip

    return ui
