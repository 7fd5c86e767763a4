"""Every endpoint, once: each method builds a ``Call``; the ``endpoint`` descriptor makes
it a plain method on ``Client`` and a coroutine method on ``AsyncClient``."""

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import httpx

from aiop.client._core import Base, Call, call, json_body, keyed
from aiop.client.types import (
    AgentRegistered,
    AgentView,
    ApiKeyView,
    CacheEntry,
    CacheList,
    CacheStats,
    CancelReply,
    DeadLetterPage,
    EventPage,
    EventSent,
    ExecutorView,
    Health,
    IssuedKey,
    LogPage,
    ProjectRun,
    ProjectView,
    Pruned,
    Replayed,
    RunsPruned,
    ScheduleView,
    SecretView,
    TailPage,
    TaskDetail,
    TaskView,
    Template,
    TemplateInfo,
    TokenReply,
    Trigger,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WorkflowEventPage,
    WorkflowPage,
    WorkflowReport,
    WorkflowStats,
    WorkflowStatus,
    WorkflowTrace,
)

if TYPE_CHECKING:
    from aiop.client._async import AsyncClient
    from aiop.client._sync import Client

P = ParamSpec("P")
T = TypeVar("T")
Json = dict[str, Any]


class endpoint(Generic[P, T]):
    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> "endpoint[P, T]": ...
    @overload
    def __get__(self, obj: "Client", owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: "AsyncClient", owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self.build

        if obj.is_async:

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await obj.run(build(obj, *args, **kwargs))

            return functools.wraps(build)(run_async)

        def run(*args: Any, **kwargs: Any) -> Any:
            return obj.run(build(obj, *args, **kwargs))

        return functools.wraps(build)(run)


def field(name: str) -> Callable[[httpx.Response], Any]:
    return lambda response: response.json()[name]


def text_field(name: str) -> Callable[[httpx.Response], str]:
    return lambda response: str(response.json()[name])


def created(response: httpx.Response) -> tuple[bool, Any]:
    """(whether the PUT or POST made something new: 201, the thing as stored)."""
    return response.status_code == 201, dict(response.json())


class Api(Base):
    """The gateway's HTTP API (``docs/`` and ``GET /openapi.json`` describe each answer;
    ``aiop.client.types`` types them)."""

    is_async = False

    @endpoint
    def health(self) -> Call[Health]:
        """GET /healthz: whether the gateway answers (no token needed)."""
        return call("GET", "/healthz", json_body, auth=False)

    # -- tokens and keys --------------------------------------------------------------

    @endpoint
    def create_token(self, api_key: str, projects: list[str] | None = None) -> Call[TokenReply]:
        """POST /v1/tokens: {"token", "expires_at", "principal", "projects"}."""
        return self.token_call(api_key, projects)

    @endpoint
    def keys(self) -> Call[list[ApiKeyView]]:
        return call("GET", "/v1/keys", field("keys"))

    @endpoint
    def new_key(self) -> Call[IssuedKey]:
        return call("POST", "/v1/keys", json_body)

    @endpoint
    def revoke_key(self, key_id: str) -> Call[ApiKeyView]:
        return call("DELETE", f"/v1/keys/{key_id}", json_body)

    # -- workflows --------------------------------------------------------------------

    @endpoint
    def submit(self, spec: Json, idempotency_key: str | None = None) -> Call[str]:
        """POST /v1/workflows: the new workflow's id."""
        return keyed("POST", "/v1/workflows", text_field("workflow_id"), idempotency_key,
                     json=spec)  # fmt: skip

    @endpoint
    def status(self, workflow_id: str) -> Call[WorkflowStatus]:
        return call("GET", f"/v1/workflows/{workflow_id}", json_body)

    @endpoint
    def report(self, workflow_id: str) -> Call[WorkflowReport]:
        return call("GET", f"/v1/workflows/{workflow_id}/report", json_body)

    @endpoint
    def cancel(self, workflow_id: str) -> Call[CancelReply]:
        # Cancelling twice changes nothing: safe to send again.
        return call("POST", f"/v1/workflows/{workflow_id}/cancel", json_body, idempotent=True)

    @endpoint
    def logs(self, workflow_id: str, step: str | None = None) -> Call[LogPage]:
        return call("GET", f"/v1/workflows/{workflow_id}/logs", json_body, params={"step": step})

    @endpoint
    def workflow_events(
        self, workflow_id: str, after: int | None = None
    ) -> Call[WorkflowEventPage]:
        """The workflow's events stored so far (after the one numbered ``after``)."""
        return call("GET", f"/v1/workflows/{workflow_id}/events", json_body,
                    params={"after": after})  # fmt: skip

    @endpoint
    def list_workflows(self, /, **filters: Any) -> Call[WorkflowPage]:
        """One page of GET /v1/workflows: ``project``, ``task``, ``state``, ``template``,
        ``label`` ("k=v", or a list of them), ``since``, ``until``, ``search`` (an id or part
        of a name), ``limit``, ``cursor``."""
        return call("GET", "/v1/workflows", json_body, params=filters)

    @endpoint
    def prune_workflows(
        self, older_than_s: float, project: str | None = None, dry_run: bool = False
    ) -> Call[RunsPruned]:
        """DELETE /v1/workflows: the runs that ended ``older_than_s`` ago, and their logs."""
        return call("DELETE", "/v1/workflows", json_body,
                    params={"older_than_s": older_than_s, "project": project, "dry_run": dry_run})  # fmt: skip

    @endpoint
    def rerun(
        self, workflow_id: str, from_step: str | None = None, parameters: Json | None = None
    ) -> Call[str]:
        body: Json = {"parameters": parameters or {}}
        if from_step:
            body["from"] = from_step
        return call("POST", f"/v1/workflows/{workflow_id}/rerun", text_field("workflow_id"),
                    json=body)  # fmt: skip

    # -- templates --------------------------------------------------------------------

    @endpoint
    def templates(self, project: str | None = None) -> Call[list[TemplateInfo]]:
        return call("GET", "/v1/templates", field("templates"), params={"project": project})

    @endpoint
    def template(self, ref: str, project: str | None = None) -> Call[Template]:
        """``name`` or ``name@version``."""
        return call("GET", f"/v1/templates/{ref}", json_body, params={"project": project})

    @endpoint
    def register_template(
        self, name: str, template: Json, project: str | None = None
    ) -> Call[tuple[bool, Template]]:
        return call("PUT", f"/v1/templates/{name}", created, params={"project": project},
                    json=template)  # fmt: skip

    @endpoint
    def run_template(
        self,
        ref: str,
        parameters: Json | None = None,
        project: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[str]:
        return keyed("POST", f"/v1/templates/{ref}/runs", text_field("workflow_id"),
                     idempotency_key, params={"project": project},
                     json={"parameters": parameters or {}})  # fmt: skip

    # -- secrets and the step cache -----------------------------------------------------

    @endpoint
    def secrets(self, project: str | None = None) -> Call[list[SecretView]]:
        return call("GET", "/v1/secrets", field("secrets"), params={"project": project})

    @endpoint
    def set_secret(
        self, name: str, value: str, project: str | None = None
    ) -> Call[tuple[bool, SecretView]]:
        """(whether it was created, the secret as stored: never its value)."""
        return call("PUT", f"/v1/secrets/{name}", created, params={"project": project},
                    json={"value": value})  # fmt: skip

    @endpoint
    def delete_secret(self, name: str, project: str | None = None) -> Call[SecretView]:
        return call("DELETE", f"/v1/secrets/{name}", json_body, params={"project": project})

    @endpoint
    def cache_entries(self, project: str | None = None) -> Call[CacheList]:
        return call("GET", "/v1/cache", json_body, params={"project": project})

    @endpoint
    def cache_remove(self, key: str) -> Call[CacheEntry]:
        return call("DELETE", f"/v1/cache/{key}", json_body)

    @endpoint
    def cache_prune(
        self, project: str | None = None, older_than_s: float | None = None
    ) -> Call[Pruned]:
        return call("DELETE", "/v1/cache", json_body,
                    params={"project": project, "older_than_s": older_than_s})  # fmt: skip

    # -- projects and tasks -------------------------------------------------------------

    @endpoint
    def projects(self, archived: bool = False) -> Call[list[ProjectView]]:
        return call("GET", "/v1/projects", field("projects"), params={"archived": archived})

    @endpoint
    def project(self, name: str) -> Call[ProjectView]:
        return call("GET", f"/v1/projects/{name}", json_body)

    @endpoint
    def create_project(self, name: str, description: str = "") -> Call[ProjectView]:
        return call("POST", "/v1/projects", json_body,
                    json={"name": name, "description": description})  # fmt: skip

    @endpoint
    def archive_project(self, name: str) -> Call[ProjectView]:
        return call("POST", f"/v1/projects/{name}/archive", json_body, idempotent=True)

    @endpoint
    def run_project(self, name: str, *, idempotency_key: str | None = None) -> Call[ProjectRun]:
        """Run every task of the project: {"set_id", "runs", ...}."""
        return keyed("POST", f"/v1/projects/{name}/runs", json_body, idempotency_key)

    @endpoint
    def project_run(self, name: str, set_id: str) -> Call[ProjectRun]:
        return call("GET", f"/v1/projects/{name}/runs/{set_id}", json_body)

    @endpoint
    def tasks(self, project: str) -> Call[list[TaskView]]:
        return call("GET", f"/v1/projects/{project}/tasks", field("tasks"))

    @endpoint
    def task(self, project: str, name: str) -> Call[TaskDetail]:
        return call("GET", f"/v1/projects/{project}/tasks/{name}", json_body)

    @endpoint
    def save_task(self, project: str, name: str, body: Json) -> Call[tuple[bool, TaskView]]:
        return call("PUT", f"/v1/projects/{project}/tasks/{name}", created, json=body)

    @endpoint
    def delete_task(self, project: str, name: str) -> Call[TaskView]:
        return call("DELETE", f"/v1/projects/{project}/tasks/{name}", json_body)

    @endpoint
    def run_task(
        self,
        project: str,
        name: str,
        parameters: Json | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[str]:
        return keyed("POST", f"/v1/projects/{project}/tasks/{name}/runs",
                     text_field("workflow_id"), idempotency_key,
                     json={"parameters": parameters or {}})  # fmt: skip

    # -- triggers and events ------------------------------------------------------------

    @endpoint
    def save_trigger(self, body: Json, project: str | None = None) -> Call[tuple[bool, Trigger]]:
        """POST /v1/triggers: (whether it is new, the trigger as stored)."""
        return call("POST", "/v1/triggers", created, params={"project": project}, json=body)

    @endpoint
    def list_triggers(self, project: str | None = None) -> Call[list[Trigger]]:
        return call("GET", "/v1/triggers", field("triggers"), params={"project": project})

    @endpoint
    def get_trigger(self, name: str, project: str | None = None) -> Call[Trigger]:
        return call("GET", f"/v1/triggers/{name}", json_body, params={"project": project})

    @endpoint
    def delete_trigger(self, name: str, project: str | None = None) -> Call[Trigger]:
        return call("DELETE", f"/v1/triggers/{name}", json_body, params={"project": project})

    @endpoint
    def list_events(self, /, **filters: Any) -> Call[EventPage]:
        """One page of GET /v1/events: ``project``, ``type``, ``matched``, ``limit``, ``cursor``."""
        return call("GET", "/v1/events", json_body, params=filters)

    @endpoint
    def send_event(
        self, headers: dict[str, str], body: bytes, project: str | None = None
    ) -> Call[EventSent]:
        """POST /v1/events in binary mode: the CloudEvent's attributes as ``ce-*`` headers."""
        return call("POST", "/v1/events", json_body, params={"project": project},
                    headers=headers, content=body)  # fmt: skip

    # -- webhooks -----------------------------------------------------------------------

    @endpoint
    def create_webhook(
        self, url: str, events: list[str], project: str | None = None, description: str = ""
    ) -> Call[WebhookCreated]:
        """POST /v1/webhooks: the answer holds the signing secret, shown this once."""
        body = {"url": url, "events": events, "description": description}
        return call("POST", "/v1/webhooks", json_body, params={"project": project}, json=body)

    @endpoint
    def list_webhooks(self, project: str | None = None) -> Call[list[Webhook]]:
        return call("GET", "/v1/webhooks", field("webhooks"), params={"project": project})

    @endpoint
    def get_webhook(self, webhook_id: str, project: str | None = None) -> Call[Webhook]:
        return call("GET", f"/v1/webhooks/{webhook_id}", json_body, params={"project": project})

    @endpoint
    def update_webhook(
        self, webhook_id: str, changes: Json, project: str | None = None
    ) -> Call[Webhook]:
        """PATCH /v1/webhooks/{id}: ``url``, ``events``, ``description``, ``enabled``
        (``{"enabled": True}`` re-enables one the platform disabled)."""
        return call("PATCH", f"/v1/webhooks/{webhook_id}", json_body,
                    params={"project": project}, json=changes)  # fmt: skip

    @endpoint
    def delete_webhook(self, webhook_id: str, project: str | None = None) -> Call[Webhook]:
        return call("DELETE", f"/v1/webhooks/{webhook_id}", json_body,
                    params={"project": project})  # fmt: skip

    @endpoint
    def webhook_deliveries(
        self, webhook_id: str, project: str | None = None, limit: int | None = None
    ) -> Call[list[WebhookDelivery]]:
        """Its deliveries, newest first, each with every attempt."""
        return call("GET", f"/v1/webhooks/{webhook_id}/deliveries", field("deliveries"),
                    params={"project": project, "limit": limit})  # fmt: skip

    @endpoint
    def redeliver(
        self, webhook_id: str, delivery_id: str, project: str | None = None
    ) -> Call[WebhookDelivery]:
        """Deliver again: a new series of attempts under the same ``webhook-id``."""
        return call("POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
                    json_body, params={"project": project})  # fmt: skip

    # -- schedules ----------------------------------------------------------------------

    @endpoint
    def create_schedule(self, body: Json, project: str | None = None) -> Call[ScheduleView]:
        return call("POST", "/v1/schedules", json_body, params={"project": project}, json=body)

    @endpoint
    def list_schedules(self, project: str | None = None) -> Call[list[ScheduleView]]:
        return call("GET", "/v1/schedules", field("schedules"), params={"project": project})

    @endpoint
    def get_schedule(self, name: str, project: str | None = None) -> Call[ScheduleView]:
        return call("GET", f"/v1/schedules/{name}", json_body, params={"project": project})

    @endpoint
    def delete_schedule(self, name: str, project: str | None = None) -> Call[ScheduleView]:
        return call("DELETE", f"/v1/schedules/{name}", json_body, params={"project": project})

    @endpoint
    def pause_schedule(self, name: str, project: str | None = None) -> Call[ScheduleView]:
        return call("POST", f"/v1/schedules/{name}/pause", json_body,
                    params={"project": project}, idempotent=True)  # fmt: skip

    @endpoint
    def resume_schedule(self, name: str, project: str | None = None) -> Call[ScheduleView]:
        return call("POST", f"/v1/schedules/{name}/resume", json_body,
                    params={"project": project}, idempotent=True)  # fmt: skip

    # -- dead letters and the live tail -------------------------------------------------

    @endpoint
    def dead_letters(
        self, limit: int | None = None, before: int | None = None
    ) -> Call[DeadLetterPage]:
        """One page of GET /v1/dead-letters, newest first; its ``next`` is the ``before``
        of the page after it."""
        return call("GET", "/v1/dead-letters", json_body,
                    params={"limit": limit, "before": before})  # fmt: skip

    @endpoint
    def replay_dead_letter(
        self, seq: int, payload: str | None = None, force: bool = False
    ) -> Call[Replayed]:
        """Send dead letter ``seq`` again to its original subject: as it was, or
        ``payload`` (the fixed message); once, unless ``force``."""
        body: Json = {"force": True} if force else {}
        if payload is not None:
            body["payload"] = payload
        return call("POST", f"/v1/dead-letters/{seq}/replay", json_body, json=body)

    @endpoint
    def stream_events(
        self,
        subjects: list[str] | None = None,
        workflow: str | None = None,
        since: str | None = None,
        last_event_id: str | None = None,
        limit: int | None = None,
    ) -> Call[TailPage]:
        """GET /v1/stream as one page: the events stored from ``since`` (30s, 5m, ISO
        8601), or after ``last_event_id``, up to the first quiet moment."""
        headers = {"Accept": "application/json"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        return call("GET", "/v1/stream", json_body, headers=headers, params={
            "subject": subjects, "workflow": workflow, "since": since, "limit": limit,
        })  # fmt: skip

    # -- agents -------------------------------------------------------------------------

    @endpoint
    def agents(self, project: str | None = None) -> Call[list[AgentView]]:
        """The agents of ``project``, or of every project of the caller's, by name."""
        return call("GET", "/v1/agents", field("agents"), params={"project": project})

    @endpoint
    def agent(self, agent_id: str) -> Call[AgentView]:
        return call("GET", f"/v1/agents/{agent_id}", json_body)

    @endpoint
    def register_agent(self, body: Json) -> Call[AgentRegistered]:
        """POST /v1/agents: ``name``, ``project``, ``capabilities``, ``concurrency``; the
        answer holds the agent's token (``aiop.client.agent`` runs an agent with it)."""
        return call("POST", "/v1/agents", json_body, json=body)

    @endpoint
    def remove_agent(self, agent_id: str) -> Call[None]:
        return call("DELETE", f"/v1/agents/{agent_id}", lambda r: None)

    # -- the operator's view -------------------------------------------------------------

    @endpoint
    def executors(self) -> Call[list[ExecutorView]]:
        """Every executor heard from lately: capacity, load, circuits, engine."""
        return call("GET", "/v1/executors", field("executors"))

    @endpoint
    def cache_stats(self, project: str | None = None) -> Call[CacheStats]:
        return call("GET", "/v1/stats/cache", json_body, params={"project": project})

    @endpoint
    def stats(self, /, **filters: Any) -> Call[WorkflowStats]:
        """GET /v1/stats: ``project``, ``task``, ``template``, ``label``, ``since``,
        ``until`` (default: the last hour), ``bucket_s`` (default 60)."""
        return call("GET", "/v1/stats", json_body, params=filters)

    @endpoint
    def trace(self, workflow_id: str) -> Call[WorkflowTrace]:
        """The run's spans across the services (404 when they are not stored where the
        gateway reads them: look its trace id up in the OTLP backend)."""
        return call("GET", f"/v1/workflows/{workflow_id}/trace", json_body)

    # -- anything else ------------------------------------------------------------------

    @endpoint
    def request(self, method: str, path: str, /, **kwargs: Any) -> Call[Any]:
        """Any other call: ``params``, ``json``, ``content``, ``headers`` as httpx takes them;
        the JSON answer (None for an empty one)."""
        return call(method.upper(), path, lambda r: r.json() if r.content else None, **kwargs)

    # -- shared by both clients' follows over SSE ---------------------------------------

    def stream_call(
        self, subjects: list[str] | None, workflow: str | None, since: str | None, last_id: str
    ) -> Call[None]:
        """GET /v1/stream as an event stream, resumed after the event ``last_id`` if given."""
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        return call("GET", "/v1/stream", lambda r: None, headers=headers, stream=True,
                    params={"subject": subjects, "workflow": workflow, "since": since})  # fmt: skip

    def follow_call(self, path: str, last_id: str, **params: Any) -> Call[None]:
        """GET ``path`` as an event stream, resumed after the event ``last_id`` if given."""
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        return call("GET", path, lambda r: None, params={"follow": "true", **params},
                    headers=headers, stream=True)  # fmt: skip
