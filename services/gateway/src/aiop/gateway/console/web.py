"""What every console page shares: the signed-in session, its API client, the CSRF check,
and rendering.

A page calls the HTTP API in-process, through the same app (guards and rate limits
included) and with the same client the CLI is built on, as the signed-in principal: the
console can see and do exactly what that principal's API key can over HTTP.
"""

import hmac
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from aiop.client import AsyncClient
from aiop.client._core import RetryPolicy
from aiop.gateway.console.sessions import SESSION_TTL_S, Session, Sessions
from aiop.gateway.console.transport import StreamingASGITransport
from aiop.gateway.context import Gateway

PREFIX = "/ui"
COOKIE = "aiop_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
HERE = Path(__file__).parent
CLIENTS = 256  # sessions whose API client (and token) is kept between requests
# Only the console's own files run or style a page; nothing inline, nothing elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignIn(Exception):
    """No valid session: the page redirects to the sign-in form."""


class Refused(Exception):
    """A change without this session's CSRF token, or from another origin."""


class Console:
    def __init__(self, gw: Gateway, served: ASGIApp) -> None:
        self.gw = gw
        self.served = served
        self.sessions = Sessions()
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, ago=ago, ms=ms, seconds=seconds, epoch=epoch)
        self._clients: OrderedDict[str, AsyncClient] = OrderedDict()

    def api(self, address: str = "127.0.0.1", *, api_key: str | None = None,
            session: Session | None = None) -> AsyncClient:  # fmt: skip
        """An in-process API client: the session's (kept, so its token is reused), or a
        one-off one for ``api_key``."""
        if session is not None and (kept := self._clients.get(session.id_hash)) is not None:
            self._clients.move_to_end(session.id_hash)
            return kept
        transport = StreamingASGITransport(self.served, client=(address, 0))
        key = api_key if session is None else session.api_key
        # A session's tokens cover the projects it signed in to, never more.
        client = AsyncClient("http://aiop.console", api_key=key, transport=transport,
                             retry=RetryPolicy(attempts=1),
                             token_projects=session.projects if session else None)  # fmt: skip
        if session is not None:
            self._clients[session.id_hash] = client
            while len(self._clients) > CLIENTS:
                self._clients.popitem(last=False)  # ASGI transports hold no sockets
        return client

    def forget(self, session: Session) -> None:
        self._clients.pop(session.id_hash, None)

    async def session(self, request: Request) -> Session:
        """The signed-in session, or SignIn."""
        session_id = request.cookies.get(COOKIE)
        session = await self.sessions.find(session_id) if session_id else None
        if session is None:
            raise SignIn()
        request.state.session = session
        return session

    async def changing(self, request: Request) -> Session:
        """The session of a request that changes something: it must carry the session's
        CSRF token and, when the browser names one, come from this origin."""
        session = await self.session(request)
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise Refused("the request came from another site")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            field = form.get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
        if not sent or not hmac.compare_digest(sent, session.csrf):
            raise Refused("the form is missing this session's CSRF token; reload the page")
        return session

    def page(self, request: Request, template: str, status: int = 200,
             **context: Any) -> HTMLResponse:  # fmt: skip
        session: Session | None = getattr(request.state, "session", None)
        html = self.env.get_template(template).render(
            request=request, session=session, prefix=PREFIX, csrf=session.csrf if session else "",
            path=request.url.path, **context,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(prefix=PREFIX, **context)


def sign_in_redirect(request: Request) -> Response:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(wanted)}", status_code=303)


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        COOKIE, session_id, max_age=int(SESSION_TTL_S), path=PREFIX, httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a console page, never another site."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//"):
        return value
    return PREFIX + "/"


def when(value: str | None) -> str:
    """An ISO time as the console shows it: UTC, to the second."""
    if not value:
        return ""
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch(value: str) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def ago(value: str | None) -> str:
    if not value:
        return ""
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    s = max(0.0, (datetime.now(UTC) - at).total_seconds())
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    if s < 86400:
        return f"{s / 3600:.0f}h ago"
    return f"{s / 86400:.0f}d ago"


def ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def seconds(value: float | None) -> str:
    return "" if value is None else ms(value * 1000)
