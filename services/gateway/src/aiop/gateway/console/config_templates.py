"""Templates: the list, and a template's page with its versions and the form its
parameters' JSON Schema makes (``forms``); the form starts a run and opens its page."""

import contextlib
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from aiop.client import AsyncClient
from aiop.client.errors import ApiError
from aiop.gateway.console import forms
from aiop.gateway.console.config import CONFIG, project_of
from aiop.gateway.console.web import PREFIX, Console

TEMPLATES = f"{CONFIG}/templates"


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=TEMPLATES)

    @ui.get("")
    async def templates(request: Request) -> Response:
        session = await console.session(request)
        project = project_of(request, session)
        items: list[Any] = []
        error = None
        try:
            items = list(await console.api(session=session).templates(project=project))
        except ApiError as exc:
            error = exc.detail or f"the API answered {exc.status}"
        return console.page(request, "config_templates.html", items=items, error=error,
                            project=project, notice=request.query_params.get("notice"))  # fmt: skip

    @ui.get("/{name}")
    async def template(request: Request, name: str) -> Response:
        session = await console.session(request)
        project = project_of(request, session)
        version = request.query_params.get("version", "")
        return await _form_page(console, request, console.api(session=session), name,
                                version, project)  # fmt: skip

    @ui.post("/{name}/run")
    async def run(request: Request, name: str) -> Response:
        session = await console.changing(request)
        api = console.api(session=session)
        sent = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        version = sent.get("version", "")
        project = sent.get("project", "") or None
        if project is not None and project not in session.projects:
            project = None  # the API would refuse it; the session's default instead
        try:
            chosen = await api.template(_ref(name, version), project=project)
        except ApiError as exc:
            return await _form_page(console, request, api, name, version, project, sent=sent,
                                    form_error=exc.detail, status=exc.status)  # fmt: skip
        schema = chosen.get("parameters") or {}
        parameters, errors = forms.parse(schema, sent)
        if errors:
            return await _form_page(console, request, api, name, version, project, sent=sent,
                                    errors=errors, status=422)  # fmt: skip
        try:
            workflow_id = await api.run_template(_ref(name, version), parameters, project=project)
        except ApiError as exc:
            errors = forms.api_errors(exc.errors)
            return await _form_page(console, request, api, name, version, project, sent=sent,
                                    errors=errors, form_error=exc.detail, status=exc.status)  # fmt: skip
        return RedirectResponse(f"{PREFIX}/runs/{workflow_id}", status_code=303)

    return ui


def _ref(name: str, version: str) -> str:
    return f"{name}@{version}" if version else name


async def _form_page(
    console: Console,
    request: Request,
    api: AsyncClient,
    name: str,
    version: str,
    project: str | None,
    *,
    sent: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    """The template's page: its versions, the chosen one's description and its form,
    filled with what was sent and the errors of it when drawn again."""
    try:
        chosen = await api.template(_ref(name, version), project=project)
    except ApiError as exc:
        return console.page(request, "error.html", status=exc.status, error=exc.detail)
    versions, newest = [chosen["version"]], chosen["version"]
    with contextlib.suppress(ApiError):  # the form stands without the other versions
        for info in await api.templates(project=project):
            if info["name"] == name:
                versions, newest = info["versions"], info["version"]
    schema = chosen.get("parameters") or {}
    errors = errors or {}
    return console.page(
        request, "config_template.html", status=status, chosen=chosen, versions=versions, newest=newest,
        version=version, project=project or "", fields=forms.fields(schema, sent, errors),
        form_error=form_error or ("Some fields need fixing." if errors else None),
        other_errors=errors.get(""),
    )  # fmt: skip
