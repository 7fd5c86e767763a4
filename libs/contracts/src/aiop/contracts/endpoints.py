"""Every request/reply endpoint between services: its subject, what it takes and what it
answers. The serving service registers it (``Service.answer``), the asking one declares
it (``Service.asks``), and the AsyncAPI document is generated from both."""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from aiop.contracts import projects, queries, schedules, stats, triggers, webhooks
from aiop.contracts.subjects import (
    AUTH_AUTHORIZE,
    AUTH_JWKS,
    AUTH_TOKEN,
    QUERY_REPORT,
    QUERY_WORKFLOW,
)

Req = TypeVar("Req", bound=msgspec.Struct)
Rep = TypeVar("Rep", bound=msgspec.Struct)


@dataclass(frozen=True)
class Endpoint(Generic[Req, Rep]):
    """``request``/``reply`` None means any JSON (the JWKS is a standard document)."""

    subject: str
    request: type[Req] | None
    reply: type[Rep] | None
    summary: str


GET_WORKFLOW = Endpoint(
    QUERY_WORKFLOW, queries.WorkflowQuery, queries.WorkflowView, "A workflow (404 if unknown)."
)
LIST_WORKFLOWS = Endpoint(
    "aiop.query.workflow.list.v1", queries.WorkflowListQuery, queries.WorkflowPage,
    "Runs matching filters, newest first, a page at a time (400 for a bad cursor).",
)  # fmt: skip
WORKFLOW_STATS = Endpoint(
    "aiop.query.workflow.stats.v1", stats.StatsQuery, stats.WorkflowStats,
    "Runs per state, and per time bucket how many ended, failed and how long they took.",
)  # fmt: skip
GET_RUN_SOURCE = Endpoint(
    "aiop.query.workflow.source.v1", queries.WorkflowQuery, queries.RunSource,
    "What a run was asked to do, to run it again (404 if unknown).",
)  # fmt: skip
GET_REPORT = Endpoint(
    QUERY_REPORT, queries.WorkflowQuery, queries.WorkflowReport, "A summary (404 if unknown)."
)
JWKS = Endpoint[msgspec.Struct, msgspec.Struct](
    AUTH_JWKS, None, None, "The JWKS to verify tokens with."
)
ISSUE_TOKEN = Endpoint(
    AUTH_TOKEN, queries.TokenRequest, queries.TokenReply, "API key -> JWT (401 bad key)."
)
AUTHORIZE = Endpoint(
    AUTH_AUTHORIZE, queries.AuthorizeRequest, queries.AuthorizeReply, "May a principal act?"
)
STEP_TOKEN = Endpoint(
    "aiop.auth.token.step.v1", queries.StepTokenRequest, queries.TokenReply,
    "A short-lived token for a step that calls the API (403 outside the submitter's projects).",
)  # fmt: skip
AGENT_TOKEN = Endpoint(
    "aiop.auth.token.agent.v1", queries.AgentTokenRequest, queries.TokenReply,
    "A short-lived token for an agent: its project, id and capabilities"
    " (403 outside the principal's projects).",
)  # fmt: skip
PRUNE_WORKFLOWS = Endpoint(
    "aiop.query.workflow.prune.v1", queries.PruneRequest, queries.Pruned,
    "Remove ended runs that finished before a time.",
)  # fmt: skip
GRANT_PROJECT = Endpoint(
    "aiop.auth.projects.grant.v1", queries.ProjectGrant, queries.PrincipalProjects,
    "Let a principal into a project (404 if there is no such principal).",
)  # fmt: skip
LIST_KEYS = Endpoint(
    "aiop.auth.keys.list.v1", queries.KeysRequest, queries.ApiKeyList, "A principal's API keys."
)
ISSUE_KEY = Endpoint(
    "aiop.auth.keys.issue.v1", queries.KeysRequest, queries.IssuedKey, "One more API key."
)
REVOKE_KEY = Endpoint(
    "aiop.auth.keys.revoke.v1", queries.KeyRevocation, queries.ApiKeyView,
    "Revoke an API key (404 if the principal has no such key).",
)  # fmt: skip
ENDPOINTS: tuple[Endpoint[Any, Any], ...] = (
    GET_WORKFLOW, LIST_WORKFLOWS, GET_RUN_SOURCE, GET_REPORT, JWKS, ISSUE_TOKEN, AUTHORIZE, LIST_KEYS, ISSUE_KEY, REVOKE_KEY, GRANT_PROJECT, STEP_TOKEN, PRUNE_WORKFLOWS,
)  # fmt: skip
ENDPOINTS += (AGENT_TOKEN,)
ENDPOINTS += (WORKFLOW_STATS,)

# Schedules: kept and fired by task-manager, managed through the gateway.
CREATE_SCHEDULE = Endpoint(
    "aiop.schedules.create.v1", schedules.ScheduleCreate, schedules.ScheduleView,
    "Create a schedule (409 name taken, 422 bad cron, timezone, template or task).",
)  # fmt: skip
LIST_SCHEDULES = Endpoint(
    "aiop.schedules.list.v1", schedules.ScheduleListQuery, schedules.ScheduleList,
    "A project's schedules with their next fire times.",
)  # fmt: skip
GET_SCHEDULE = Endpoint(
    "aiop.schedules.get.v1", schedules.ScheduleRef, schedules.ScheduleView,
    "A schedule with its latest ticks (404 if unknown).",
)  # fmt: skip
DELETE_SCHEDULE = Endpoint(
    "aiop.schedules.delete.v1", schedules.ScheduleRef, schedules.ScheduleView,
    "Delete a schedule (404 if unknown).",
)  # fmt: skip
ENABLE_SCHEDULE = Endpoint(
    "aiop.schedules.enable.v1", schedules.ScheduleEnabling, schedules.ScheduleView,
    "Pause or resume a schedule (404 if unknown).",
)  # fmt: skip
SCHEDULE_ENDPOINTS = (
    CREATE_SCHEDULE, LIST_SCHEDULES, GET_SCHEDULE, DELETE_SCHEDULE, ENABLE_SCHEDULE,
)  # fmt: skip
ENDPOINTS += SCHEDULE_ENDPOINTS

# Triggers and the external events they were matched against (task-manager).
SAVE_TRIGGER = Endpoint(
    "aiop.triggers.save.v1", triggers.Trigger, triggers.TriggerSaved,
    "Store a trigger, replacing one of the same name (422 if not valid, or its task unknown).",
)  # fmt: skip
GET_TRIGGER = Endpoint(
    "aiop.triggers.get.v1", triggers.TriggerRef, triggers.Trigger, "A trigger (404 if none)."
)
LIST_TRIGGERS = Endpoint(
    "aiop.triggers.list.v1", triggers.TriggersQuery, triggers.TriggerList,
    "A project's triggers.",
)  # fmt: skip
DELETE_TRIGGER = Endpoint(
    "aiop.triggers.delete.v1", triggers.TriggerRef, triggers.Trigger,
    "Delete a trigger; the one deleted (404 if none).",
)  # fmt: skip
LIST_EVENTS = Endpoint(
    "aiop.events.list.v1", triggers.EventsQuery, triggers.EventPage,
    "A project's recorded external events, newest first, with what they started.",
)  # fmt: skip
ENDPOINTS += (SAVE_TRIGGER, GET_TRIGGER, LIST_TRIGGERS, DELETE_TRIGGER, LIST_EVENTS)

CREATE_PROJECT = Endpoint(
    "aiop.projects.create.v1", projects.NewProject, projects.ProjectSaved,
    "Create a project (409 if another principal holds the name).",
)  # fmt: skip
LIST_PROJECTS = Endpoint(
    "aiop.projects.list.v1", projects.ProjectsQuery, projects.ProjectList, "Projects, by name."
)
GET_PROJECT = Endpoint(
    "aiop.projects.get.v1", projects.ProjectRef, projects.ProjectView, "A project (404 if unknown)."
)
ARCHIVE_PROJECT = Endpoint(
    "aiop.projects.archive.v1", projects.ProjectRef, projects.ProjectView,
    "Archive a project: it starts nothing new (404 if unknown).",
)  # fmt: skip
SAVE_TASK = Endpoint(
    "aiop.tasks.save.v1", projects.SaveTask, projects.TaskSaved,
    "Create or replace a task (404 unknown project, 409 archived).",
)  # fmt: skip
GET_TASK = Endpoint(
    "aiop.tasks.get.v1", projects.TaskRef, projects.TaskView, "A task (404 if unknown)."
)
LIST_TASKS = Endpoint(
    "aiop.tasks.list.v1", projects.ProjectRef, projects.TaskList, "A project's tasks, by name."
)
DELETE_TASK = Endpoint(
    "aiop.tasks.delete.v1", projects.TaskRef, projects.TaskView, "Delete a task (404 if unknown)."
)
PROJECT_ENDPOINTS: tuple[Endpoint[Any, Any], ...] = (
    CREATE_PROJECT, LIST_PROJECTS, GET_PROJECT, ARCHIVE_PROJECT, SAVE_TASK, GET_TASK, LIST_TASKS,
    DELETE_TASK,
)  # fmt: skip
ENDPOINTS += PROJECT_ENDPOINTS

# Webhooks: kept and delivered by the reporter, managed through the gateway.
CREATE_WEBHOOK = Endpoint(
    "aiop.webhooks.create.v1", webhooks.NewWebhook, webhooks.WebhookCreated,
    "Create a webhook; the answer holds its secret, shown this once (422 if not valid).",
)  # fmt: skip
UPDATE_WEBHOOK = Endpoint(
    "aiop.webhooks.update.v1", webhooks.WebhookChange, webhooks.Webhook,
    "Change a webhook; enabling it resets its failures (404 if unknown, 422 if not valid).",
)  # fmt: skip
GET_WEBHOOK = Endpoint(
    "aiop.webhooks.get.v1", webhooks.WebhookRef, webhooks.Webhook, "A webhook (404 if unknown)."
)
LIST_WEBHOOKS = Endpoint(
    "aiop.webhooks.list.v1", webhooks.WebhooksQuery, webhooks.WebhookList, "A project's webhooks."
)
DELETE_WEBHOOK = Endpoint(
    "aiop.webhooks.delete.v1", webhooks.WebhookRef, webhooks.Webhook,
    "Delete a webhook; the one deleted (404 if unknown).",
)  # fmt: skip
LIST_DELIVERIES = Endpoint(
    "aiop.webhooks.deliveries.v1", webhooks.DeliveriesQuery, webhooks.DeliveryList,
    "A webhook's deliveries, newest first, with every attempt (404 if unknown).",
)  # fmt: skip
REDELIVER = Endpoint(
    "aiop.webhooks.redeliver.v1", webhooks.DeliveryRef, webhooks.WebhookDelivery,
    "Deliver again (404 if unknown, 409 while it is pending or the webhook disabled).",
)  # fmt: skip
WEBHOOK_ENDPOINTS: tuple[Endpoint[Any, Any], ...] = (
    CREATE_WEBHOOK, UPDATE_WEBHOOK, GET_WEBHOOK, LIST_WEBHOOKS, DELETE_WEBHOOK, LIST_DELIVERIES,
    REDELIVER,
)  # fmt: skip
ENDPOINTS += WEBHOOK_ENDPOINTS
