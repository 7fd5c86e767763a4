"""The OpenAPI document as the API behaves: request and response bodies (from the
contracts' msgspec structs, since routes read their bodies themselves), the bearer
scheme, and every status a route can answer with its problem-details shape."""

import copy
from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from aiop.contracts.projects import (
    NewProject,
    ProjectList,
    ProjectRun,
    ProjectView,
    TaskList,
    TaskRun,
    TaskSpec,
    TaskView,
)
from aiop.contracts.queries import (
    ApiKeyList,
    ApiKeyView,
    CancelReply,
    IssuedKey,
    RerunRequest,
    RunsPruned,
    TokenReply,
    TokenRequest,
    WorkflowPage,
    WorkflowReport,
    WorkflowView,
)
from aiop.contracts.schedules import ScheduleIn, ScheduleList, ScheduleView
from aiop.contracts.secrets import MAX_SECRET_BYTES, SecretList, SecretValue, SecretView
from aiop.contracts.stats import WorkflowStats
from aiop.contracts.templates import Template, TemplateList, TemplateRun
from aiop.contracts.triggers import CloudEvent, EventPage, EventSent, Trigger, TriggerList
from aiop.contracts.webhooks import (
    DeliveryList,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookIn,
    WebhookList,
    WebhookPatch,
)
from aiop.contracts.workflow import MAX_STEPS, WorkflowSpec
from aiop.gateway.adapters.dead_letters import DeadLetterPage, Replayed, ReplayRequest
from aiop.gateway.adapters.event_tail import TailPage
from aiop.gateway.adapters.logs import LogPage
from aiop.gateway.adapters.step_cache import CacheList, CacheStats, Pruned
from aiop.gateway.adapters.traces import WorkflowTrace
from aiop.gateway.adapters.workflow_events import WorkflowEventPage
from aiop.gateway.domain.agents import schemas as agent_schemas
from aiop.gateway.domain.fleet import ExecutorList
from aiop.gateway.problems import MEDIA_TYPE

REF = "#/components/schemas/{name}"
TOKEN = r"^[A-Za-z0-9_\-]{1,128}$"  # names and ids that become subject tokens
# What the routes check.
PATTERNS = {"workflow_id": TOKEN, "key_id": r"^[0-9a-f]{12}$", "name": TOKEN, "project": TOKEN,
            "set_id": TOKEN, "webhook_id": TOKEN, "delivery_id": TOKEN,
            "agent_id": r"^ag-[0-9a-f]{16}$", "lease_id": r"^[0-9]+-[0-9]+$",
            "key": r"^[0-9a-f]{64}$",
            "ref": r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$"}  # fmt: skip
PROBLEM: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "about:blank, or urn:aiop:problem:<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request's path"},
        "errors": {
            "type": "array",
            "description": "every field error (422): a JSON pointer into the body and why",
            "items": {
                "type": "object",
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                "required": ["detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "instance"],
}
SUBMITTED: dict[str, Any] = {
    "title": "Submitted",
    "type": "object",
    "properties": {"workflow_id": {"type": "string"}, "status_url": {"type": "string"}},
    "required": ["workflow_id", "status_url"],
}
STATUS: dict[str, Any] = {
    "title": "WorkflowStatus",
    "description": "task-manager's view of the workflow, with reporter's summary (or null).",
    "allOf": [
        {"$ref": REF.format(name="WorkflowView")},
        {
            "type": "object",
            "properties": {
                "report": {"anyOf": [{"$ref": REF.format(name="WorkflowReport")}, {"type": "null"}]}
            },
        },
    ],
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key from the same principal always names the same workflow;"
    " used again with another body, it is refused (409).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Responses for ``statuses``, each a problem document."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": REF.format(name="Problem")}}},
        }
        for status in statuses
    }


def json_reply(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(name=name)}}},
    }


def json_body(name: str) -> dict[str, Any]:
    """An ``openapi_extra`` with a required JSON request body of schema ``name``."""
    schema = {"$ref": REF.format(name=name)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


BEARER: dict[str, Any] = {"security": [{"bearer": []}]}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with the components the routes name."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = doc.setdefault("components", {})
            components.setdefault("schemas", {}).update(schemas())
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            for path in doc["paths"].values():
                for operation in path.values():
                    _as_answered(operation)
            for name in ("HTTPValidationError", "ValidationError"):  # a shape never sent
                components["schemas"].pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _as_answered(operation: dict[str, Any]) -> None:
    """FastAPI's own additions, made true: its 422 for path parameters has a shape the
    API never sends (and a workflow id that is not a subject token is a 400), and a
    workflow id's pattern is what the routes check."""
    responses = operation.get("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json")
    if default_422 is not None:
        del responses["422"]
    for parameter in operation.get("parameters", []):
        if parameter["name"] in PATTERNS:
            parameter["schema"]["pattern"] = PATTERNS[parameter["name"]]


def schemas() -> dict[str, Any]:
    _, found = msgspec.json.schema_components(
        [
            WorkflowSpec,
            TokenRequest,
            TokenReply,
            WorkflowView,
            WorkflowReport,
            ApiKeyList,
            ApiKeyView,
            IssuedKey,
            CancelReply,
            LogPage,
            WorkflowEventPage,
            SecretValue,
            SecretView,
            SecretList,
            CacheList,
            Pruned,
            CacheStats,
            ExecutorList,
            WorkflowStats,
            WorkflowTrace,
            Template,
            TemplateList,
            TemplateRun,
            Trigger,
            TriggerList,
            EventPage,
            EventSent,
            CloudEvent,
            ScheduleIn,
            ScheduleView,
            ScheduleList,
            WorkflowPage,
            RunsPruned,
            RerunRequest,
            NewProject,
            ProjectView,
            ProjectList,
            ProjectRun,
            TaskSpec,
            TaskView,
            TaskList,
            TaskRun,
            WebhookIn,
            WebhookPatch,
            Webhook,
            WebhookCreated,
            WebhookList,
            WebhookDelivery,
            DeliveryList,
            DeadLetterPage,
            ReplayRequest,
            Replayed,
            TailPage,
        ],
        ref_template=REF,
    )
    found = copy.deepcopy(found)
    _constrain(found)
    return {**found, **agent_schemas(), "Problem": PROBLEM, "Submitted": SUBMITTED,
            "WorkflowStatus": STATUS}  # fmt: skip


def _constrain(found: dict[str, Any]) -> None:
    """What the gateway checks beyond the structs' types, where a schema can say it; what
    it cannot (unknown or cyclic needs, a name used twice) is a 422."""
    workflow = found["WorkflowSpec"]["properties"]
    workflow["name"]["pattern"] = TOKEN
    workflow["project"]["pattern"] = TOKEN
    workflow["steps"] |= {"minItems": 1, "maxItems": MAX_STEPS}
    step = found["StepSpec"]["properties"]
    step["name"]["pattern"] = TOKEN
    step["run"] |= {
        "description": "the argv, its first item naming the program; left out (or [])"
        " by a step that names an agent"
    }
    # The events carry ``run`` always; a workflow written by hand leaves it out of an
    # agent step (contracts.workflow.as_written).
    found["StepSpec"]["required"] = [
        name for name in found["StepSpec"]["required"] if name != "run"
    ]
    step["timeout"]["anyOf"][0] |= {"exclusiveMinimum": 0}
    found["SecretValue"]["properties"]["value"] |= {
        "minLength": 1,
        "maxLength": MAX_SECRET_BYTES,
        "pattern": "^[^\\u0000]*$",
        "description": f"at most {MAX_SECRET_BYTES} bytes in UTF-8, no NUL character;"
        " sealed at once, never shown again",
    }
