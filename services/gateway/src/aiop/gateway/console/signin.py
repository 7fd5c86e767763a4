"""Signing in with an API key, and out again."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from aiop.client.errors import ApiError
from aiop.gateway.console.web import COOKIE, PREFIX, Console, safe_next, set_session_cookie
from aiop.gateway.guards import client_address


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=PREFIX)

    @ui.get("/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        return console.page(request, "login.html", next=safe_next(next))

    @ui.post("/login")
    async def login(
        request: Request,
        api_key: Annotated[str, Form()] = "",
        project: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "",
    ) -> Response:
        """The key is checked by exchanging it for a token, as every client does; with a
        project, the session's tokens are limited to it (as ``aiop token --project``)."""
        address = client_address(request.scope)
        limit = [project.strip()] if project.strip() else None
        try:
            async with console.api(address, api_key=api_key.strip()) as api:
                reply = await api.create_token(api_key.strip(), limit)
        except ApiError as exc:
            status = exc.status if exc.status in (401, 403, 429) else 502
            message = "unknown API key" if exc.status in (400, 401) else exc.detail
            return console.page(request, "login.html", status=status, error=message,
                                next=safe_next(next))  # fmt: skip
        session_id, _ = await console.sessions.create(
            api_key.strip(), reply["principal"], reply["projects"]
        )
        response = RedirectResponse(safe_next(next), status_code=303)
        set_session_cookie(response, request, session_id)
        return response

    @ui.post("/logout")
    async def logout(request: Request) -> Response:
        session = await console.changing(request)
        console.forget(session)
        await console.sessions.end(request.cookies.get(COOKIE, ""))
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return ui
