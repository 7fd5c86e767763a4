"""Webhooks: a project's endpoints, enabled or not (and why the platform disabled one),
a new one (its signing secret shown once), enable, disable, delete, and each endpoint's
deliveries with their attempts and a redelivery of a failed one."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from aiop.client.errors import ApiError
from aiop.contracts.webhooks import WEBHOOK_EVENTS
from aiop.gateway.console.config import CONFIG, attempt, back, project_of, refused
from aiop.gateway.console.web import Console

WEBHOOKS = f"{CONFIG}/webhooks"
EVENT_TYPES = sorted(WEBHOOK_EVENTS)
SUGGESTED = ("workflow.completed", "workflow.failed")  # ticked on the new-webhook form


def router(console: Console) -> APIRouter:
    ui = APIRouter(prefix=WEBHOOKS)

    @ui.get("")
    async def webhooks(request: Request) -> Response:
        session = await console.session(request)
        project = project_of(request, session)
        items: list[Any] = []
        error = None
        try:
            items = list(await console.api(session=session).list_webhooks(project=project))
        except ApiError as exc:
            error = exc.detail or f"the API answered {exc.status}"
        return console.page(request, "config_webhooks.html", items=items, error=error,
                            project=project, event_types=EVENT_TYPES, suggested=SUGGESTED,
                            notice=request.query_params.get("notice"))  # fmt: skip

    @ui.post("")
    async def create(request: Request) -> Response:
        api = console.api(session=await console.changing(request))
        form = await request.form()
        project = str(form.get("project") or "") or None
        url = str(form.get("url") or "").strip()
        events = [str(e) for e in form.getlist("events")]
        if not url or not events:
            return back(WEBHOOKS, "a webhook needs a URL and at least one event", project)
        try:
            made = await api.create_webhook(url, events, project=project,
                                            description=str(form.get("description") or ""))  # fmt: skip
        except ApiError as exc:
            return back(WEBHOOKS, refused("adding the webhook", exc), project)
        return console.page(request, "config_secret_once.html", title="New webhook",
                            what="signing secret", value=made["secret"],
                            facts={"id": made["id"], "url": made["url"],
                                   "events": ", ".join(made["events"]), "project": made["project"]},
                            back=f"{WEBHOOKS}/{made['id']}?project={made['project']}")  # fmt: skip

    @ui.get("/{webhook_id}")
    async def webhook(request: Request, webhook_id: str) -> Response:
        session = await console.session(request)
        api = console.api(session=session)
        project = project_of(request, session)
        try:
            hook = await api.get_webhook(webhook_id, project=project)
        except ApiError as exc:
            return console.page(request, "error.html", status=exc.status, error=exc.detail)
        deliveries: list[Any] = []
        error = None
        try:
            deliveries = list(await api.webhook_deliveries(webhook_id, project=project))
        except ApiError as exc:
            error = exc.detail or f"the API answered {exc.status}"
        return console.page(request, "config_webhook.html", hook=hook, deliveries=deliveries,
                            error=error, project=project,
                            notice=request.query_params.get("notice"))  # fmt: skip

    _changes(ui, console)
    return ui


def _changes(ui: APIRouter, console: Console) -> None:
    @ui.post("/{webhook_id}/{action}")
    async def change(request: Request, webhook_id: str, action: str) -> Response:
        api = console.api(session=await console.changing(request))
        form = await request.form()
        project = str(form.get("project") or "") or None
        # Back to the page the button was on: the list, or the webhook's own.
        here = WEBHOOKS if form.get("from") == "list" else f"{WEBHOOKS}/{webhook_id}"
        if action == "delete":
            notice = await attempt(lambda: api.delete_webhook(webhook_id, project=project),
                                   f"webhook {webhook_id} deleted", "deleting the webhook")  # fmt: skip
            return back(WEBHOOKS, notice, project)
        if action not in ("enable", "disable"):
            return back(here, f"no such change: {action}", project)
        enabled = action == "enable"
        notice = await attempt(
            lambda: api.update_webhook(webhook_id, {"enabled": enabled}, project=project),
            f"webhook {action}d", f"{action} of the webhook",
        )  # fmt: skip
        return back(here, notice, project)

    @ui.post("/{webhook_id}/deliveries/{delivery_id}/redeliver")
    async def redeliver(request: Request, webhook_id: str, delivery_id: str) -> Response:
        api = console.api(session=await console.changing(request))
        project = str((await request.form()).get("project") or "") or None
        notice = await attempt(lambda: api.redeliver(webhook_id, delivery_id, project=project),
                               f"delivery {delivery_id} sent again", "redelivery")  # fmt: skip
        return back(f"{WEBHOOKS}/{webhook_id}", notice, project)
