"""The configuration pages: an index, and the triggers, schedules and secrets of a
project. Each change is the API call the CLI makes; a refusal comes back as the notice
of the page it was made from, never as an error page."""

import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from aiop.client.errors import ApiError
from aiop.gateway.console.sessions import Session
from aiop.gateway.console.web import PREFIX, Console

CONFIG = f"{PREFIX}/config"
SECTIONS = [
    ("templates", "Templates", "Start a run from a template's form."),
    ("triggers", "Triggers", "Which events start which template or task."),
    ("schedules", "Schedules", "Runs started on a cron schedule; pause, resume, delete."),
    ("secrets", "Secrets", "Names only: a value is never shown. Set or delete one."),
    ("keys", "API keys and tokens", "Issue and revoke keys; a short-lived token for a key."),
    ("webhooks", "Webhooks", "Where the platform posts run events, and each delivery."),
]


def project_of(request: Request, session: Session) -> str | None:
    """The project a configuration page shows: the one asked for if the session holds
    it, else the session's first (None: let the API choose its default)."""
    asked = request.query_params.get("project", "")
    if asked in session.projects:
        return asked
    return session.projects[0] if session.projects else None


def back(path: str, notice: str, project: str | None = None) -> Response:
    """A change is answered with the page it came from and a notice of what happened."""
    query = {"notice": notice, **({"project": project} if project else {})}
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


def refused(what: str, exc: ApiError) -> str:
    return f"{what} refused: {exc.detail or exc.status}"


async def attempt(action: Callable[[], Awaitable[Any]], done: str, what: str) -> str:
    """Run one change; the notice that says how it went."""
    try:
        await action()
    except ApiError as exc:
        return refused(what, exc)
    return done


async def listing(console: Console, request: Request, template: str, fetch: str) -> Response:
    """A project's list page: the list (``fetch``, the client's method), or the API's
    refusal in its place."""
    session = await console.session(request)
    project = project_of(request, session)
    items: list[Any] = []
    error = None
    try:
        items = list(await getattr(console.api(session=session), fetch)(project=project))
    except ApiError as exc:
        error = exc.detail or f"the API answered {exc.status}"
    return console.page(request, template, items=items, error=error, project=project,
                        notice=request.query_params.get("notice"))  # fmt: skip


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=CONFIG)

    @ui.get("")
    async def index(request: Request) -> Response:
        session = await console.session(request)
        templates: list[Any] = []
        with contextlib.suppress(ApiError):  # the index stands without them
            templates = list(await console.api(session=session).templates())
        return console.page(request, "config.html", sections=SECTIONS, templates=templates)

    @ui.get("/triggers")
    async def triggers(request: Request) -> Response:
        return await listing(console, request, "config_triggers.html", "list_triggers")

    @ui.post("/triggers/{name}/delete")
    async def delete_trigger(
        request: Request, name: str, project: Annotated[str, Form()] = ""
    ) -> Response:
        api = console.api(session=await console.changing(request))
        notice = await attempt(lambda: api.delete_trigger(name, project=project or None),
                               f"trigger {name} deleted", f"deleting trigger {name}")  # fmt: skip
        return back(f"{CONFIG}/triggers", notice, project)

    @ui.get("/schedules")
    async def schedules(request: Request) -> Response:
        return await listing(console, request, "config_schedules.html", "list_schedules")

    @ui.post("/schedules/{name}/{action}")
    async def change_schedule(
        request: Request, name: str, action: str, project: Annotated[str, Form()] = ""
    ) -> Response:
        api = console.api(session=await console.changing(request))
        changes = {"pause": (api.pause_schedule, "paused"),
                   "resume": (api.resume_schedule, "resumed"),
                   "delete": (api.delete_schedule, "deleted")}  # fmt: skip
        if action not in changes:
            return back(f"{CONFIG}/schedules", f"no such change: {action}", project)
        change, done = changes[action]
        notice = await attempt(lambda: change(name, project=project or None),
                               f"schedule {name} {done}", f"{action} of schedule {name}")  # fmt: skip
        return back(f"{CONFIG}/schedules", notice, project)

    _secrets(ui, console)
    return ui


def _secrets(ui: APIRouter, console: Console) -> None:
    @ui.get("/secrets")
    async def secrets(request: Request) -> Response:
        return await listing(console, request, "config_secrets.html", "secrets")

    @ui.post("/secrets")
    async def set_secret(
        request: Request,
        name: Annotated[str, Form()] = "",
        value: Annotated[str, Form()] = "",
        project: Annotated[str, Form()] = "",
    ) -> Response:
        api = console.api(session=await console.changing(request))
        name = name.strip()
        if not name or not value:
            return back(f"{CONFIG}/secrets", "a secret needs a name and a value", project)
        try:
            new, _ = await api.set_secret(name, value, project=project or None)
        except ApiError as exc:
            return back(f"{CONFIG}/secrets", refused(f"setting secret {name}", exc), project)
        return back(
            f"{CONFIG}/secrets", f"secret {name} {'created' if new else 'changed'}", project
        )

    @ui.post("/secrets/{name}/delete")
    async def delete_secret(
        request: Request, name: str, project: Annotated[str, Form()] = ""
    ) -> Response:
        api = console.api(session=await console.changing(request))
        notice = await attempt(lambda: api.delete_secret(name, project=project or None),
                               f"secret {name} deleted", f"deleting secret {name}")  # fmt: skip
        return back(f"{CONFIG}/secrets", notice, project)
