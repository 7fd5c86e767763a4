"""Every route answers a caller of another project with 404 or 403: a workflow of a
project the caller may not touch is not even named."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.domain.tokens import token_claims
from aiop.contracts import endpoints as ep
from aiop.contracts.cache import KV_STEP_CACHE, CacheEntry, cache_entry_key
from aiop.contracts.endpoints import GET_REPORT, GET_WORKFLOW, Endpoint
from aiop.contracts.envelope import encode_event
from aiop.contracts.events import DeadLetterRecorded, Origin
from aiop.contracts.projects import ProjectView, TaskList, TaskSaved, TaskView
from aiop.contracts.queries import (
    Pruned,
    WorkflowListItem,
    WorkflowPage,
    WorkflowQuery,
    WorkflowReport,
    WorkflowView,
)
from aiop.contracts.schedules import ScheduleList, ScheduleView
from aiop.contracts.stats import WorkflowStats
from aiop.contracts.triggers import EventPage, Trigger, TriggerList, TriggerSaved
from aiop.contracts.webhooks import (
    DeliveryList,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookList,
)
from aiop.contracts.workflow import WorkflowSpec
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.handlers.schedules import ENDPOINTS as SCHEDULES
from aiop.servicekit import Service, ServiceSettings, rpc

from .conftest import GOOD, Env

pytestmark = pytest.mark.integration

WF = "wf-default"
VIEW = WorkflowView(workflow_id=WF, name="build", project="default", state="running", steps=[])
REPORT = WorkflowReport(workflow_id=WF, outcome="running", project="default")
SECRET = {"value": "s3cret-of-default"}
TASK = {"workflow": {"name": "t", "steps": [{"name": "s", "run": ["true"]}]}}
TEMPLATE = {"version": "1", "workflow": {"name": "mine", "steps": [{"name": "s", "run": ["true"]}]}}
SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "template": "mine"}
TRIGGER = {"name": "on-push", "event_type": "push", "target": {"template": "mine"}}
EVENT = {"specversion": "1.0", "id": "e1", "source": "git", "type": "push"}
WEBHOOK = {"url": "https://example.com/hook", "events": ["workflow.completed"]}
AGENT = {"name": "helper", "capabilities": ["ask"]}  # registered in project default
CACHE_KEY = "c0ffee" * 10 + "c0de"  # an entry of project default, made by the test
# How an intruder calls each route, and what it must get. A new route without an entry
# here fails the test until someone decides how it guards its projects.
CALLS: dict[tuple[str, str], tuple[str, dict[str, Any], set[int]]] = {
    ("POST", "/v1/workflows"): ("/v1/workflows", GOOD, {403}),
    ("GET", "/v1/workflows/{workflow_id}"): (f"/v1/workflows/{WF}", {}, {404}),
    # The run history: another project is not even named.
    ("DELETE", "/v1/workflows"): ("/v1/workflows?project=default&older_than_s=1e8", {}, {404}),
    ("GET", "/v1/workflows"): ("/v1/workflows?project=default", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/report"): (f"/v1/workflows/{WF}/report", {}, {404}),
    ("POST", "/v1/workflows/{workflow_id}/cancel"): (f"/v1/workflows/{WF}/cancel", {}, {404}),
    ("POST", "/v1/workflows/{workflow_id}/rerun"): (f"/v1/workflows/{WF}/rerun", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/logs"): (f"/v1/workflows/{WF}/logs", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/events"): (f"/v1/workflows/{WF}/events", {}, {404}),
    # Secrets: another project's are not even named. The owner's PUT creates the secret
    # its DELETE then removes, so the intruder's DELETE was refused, not a miss.
    ("PUT", "/v1/secrets/{name}"): ("/v1/secrets/API_TOKEN?project=default", SECRET, {404}),
    ("GET", "/v1/secrets"): ("/v1/secrets?project=default", {}, {404}),
    ("DELETE", "/v1/secrets/{name}"): ("/v1/secrets/API_TOKEN?project=default", {}, {404}),
    # The step cache: another project's entries are not even named.
    ("GET", "/v1/cache"): ("/v1/cache?project=default", {}, {404}),
    ("DELETE", "/v1/cache/{key}"): (f"/v1/cache/{CACHE_KEY}", {}, {404}),
    ("DELETE", "/v1/cache"): ("/v1/cache?project=default", {}, {404}),
    # Templates: another project's are not even named. The owner's PUT registers the one
    # the later routes read and run.
    ("PUT", "/v1/templates/{ref}"): ("/v1/templates/mine?project=default", TEMPLATE, {404}),
    ("GET", "/v1/templates"): ("/v1/templates?project=default", {}, {404}),
    ("GET", "/v1/templates/{ref}"): ("/v1/templates/mine@1?project=default", {}, {404}),
    ("POST", "/v1/templates/{ref}/runs"): ("/v1/templates/mine/runs", {"parameters": {}}, {404}),
    # Projects and tasks: another project's are not even named.
    ("GET", "/v1/projects/{project}"): ("/v1/projects/default", {}, {404}),
    ("POST", "/v1/projects/{project}/archive"): ("/v1/projects/default/archive", {}, {404}),
    ("PUT", "/v1/projects/{project}/tasks/{name}"): ("/v1/projects/default/tasks/t", TASK, {404}),
    ("GET", "/v1/projects/{project}/tasks"): ("/v1/projects/default/tasks", {}, {404}),
    ("GET", "/v1/projects/{project}/tasks/{name}"): ("/v1/projects/default/tasks/t", {}, {404}),
    ("POST", "/v1/projects/{project}/tasks/{name}/runs"): (
        "/v1/projects/default/tasks/t/runs",
        {},
        {404},
    ),
    ("DELETE", "/v1/projects/{project}/tasks/{name}"): ("/v1/projects/default/tasks/t", {}, {404}),
    ("POST", "/v1/projects/{project}/runs"): ("/v1/projects/default/runs", {}, {404}),
    ("GET", "/v1/projects/{project}/runs/{set_id}"): ("/v1/projects/default/runs/s1", {}, {404}),
    # Schedules: another project's are not even named.
    ("POST", "/v1/schedules"): ("/v1/schedules?project=default", SCHEDULE, {404}),
    ("GET", "/v1/schedules"): ("/v1/schedules?project=default", {}, {404}),
    ("GET", "/v1/schedules/{name}"): ("/v1/schedules/nightly", {}, {404}),
    ("DELETE", "/v1/schedules/{name}"): ("/v1/schedules/nightly", {}, {404}),
    ("POST", "/v1/schedules/{name}/pause"): ("/v1/schedules/nightly/pause", {}, {404}),
    ("POST", "/v1/schedules/{name}/resume"): ("/v1/schedules/nightly/resume", {}, {404}),
    # Triggers and external events: another project's are not even named, and an event
    # is not published into it.
    ("POST", "/v1/triggers"): ("/v1/triggers?project=default", TRIGGER, {404}),
    ("GET", "/v1/triggers"): ("/v1/triggers?project=default", {}, {404}),
    ("GET", "/v1/triggers/{name}"): ("/v1/triggers/on-push", {}, {404}),
    ("DELETE", "/v1/triggers/{name}"): ("/v1/triggers/on-push", {}, {404}),
    ("POST", "/v1/events"): ("/v1/events?project=default", EVENT, {404}),
    ("GET", "/v1/events"): ("/v1/events?project=default", {}, {404}),
    # Webhooks: another project's are not even named.
    ("POST", "/v1/webhooks"): ("/v1/webhooks?project=default", WEBHOOK, {404}),
    ("GET", "/v1/webhooks"): ("/v1/webhooks?project=default", {}, {404}),
    ("GET", "/v1/webhooks/{webhook_id}"): ("/v1/webhooks/wh_1", {}, {404}),
    ("PATCH", "/v1/webhooks/{webhook_id}"): ("/v1/webhooks/wh_1", {"enabled": True}, {404}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): ("/v1/webhooks/wh_1", {}, {404}),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): ("/v1/webhooks/wh_1/deliveries", {}, {404}),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): (
        "/v1/webhooks/wh_1/deliveries/msg_1/redeliver",
        {},
        {404},
    ),
    # Agents: another project's are not even named. The owner's GET reads the agent
    # registered before; its DELETE removes it.
    ("POST", "/v1/agents"): ("/v1/agents", AGENT, {404}),
    ("GET", "/v1/agents"): ("/v1/agents?project=default", {}, {404}),
    ("GET", "/v1/agents/{agent_id}"): ("/v1/agents/{agent_id}", {}, {404}),
    ("DELETE", "/v1/agents/{agent_id}"): ("/v1/agents/{agent_id}", {}, {404}),
    # The operator's reads: run statistics and a run's trace, like the run list and the
    # run; the cache's size per project. The fleet names no project and counts workflows
    # only, so any signed-in user sees it.
    ("GET", "/v1/stats"): ("/v1/stats?project=default", {}, {404}),
    ("GET", "/v1/workflows/{workflow_id}/trace"): (f"/v1/workflows/{WF}/trace", {}, {404}),
    ("GET", "/v1/stats/cache"): ("/v1/stats/cache?project=default", {}, {404}),
    ("GET", "/v1/executors"): ("/v1/executors", {}, {200}),
    # Dead letters: a caller is shown its projects' records only (another's page is
    # empty), and another's record is not even named; nor is a workflow in the live tail.
    ("GET", "/v1/dead-letters"): ("/v1/dead-letters", {}, {200}),
    ("POST", "/v1/dead-letters/{seq}/replay"): ("/v1/dead-letters/{dlq_seq}/replay", {}, {404}),
    ("GET", "/v1/stream"): (f"/v1/stream?workflow={WF}&idle_s=0.1", {}, {404}),
    # Keys belong to a principal: another's key is not even named.
    ("DELETE", "/v1/keys/{key_id}"): ("/v1/keys/{owner_key}", {}, {404}),
}
# Routes that act on no project: the API key is the credential, nothing is shown, or the
# caller's own keys, whatever its projects.
# A project's name is taken by whoever creates it first; listing shows only one's own.
OPEN = {("POST", "/v1/tokens"), ("GET", "/healthz"), ("GET", "/v1/keys"), ("POST", "/v1/keys"),
        ("POST", "/v1/projects"), ("GET", "/v1/projects")}  # fmt: skip
# An agent's own routes take its agent token only: every user's token is refused (403),
# the owner's too (services/gateway/tests/test_agents.py).
AGENT_ONLY = {
    ("POST", f"/v1/agents/{{agent_id}}/{what}") for what in ("work", "token")
} | {
    ("POST", f"/v1/agents/{{agent_id}}/leases/{{lease_id}}/{what}")
    for what in ("heartbeat", "progress", "logs", "result", "failure")
}  # fmt: skip
# Where the owner, past the ownership check, is refused for another reason.
OWNER_REFUSED = {"/v1/workflows/{WF}/rerun": 409,  # the workflow is still running
                 "/v1/workflows/{WF}/trace": 404}  # its spans are not stored here  # fmt: skip


def project_stubs() -> list[tuple[Endpoint[Any, Any], Any]]:
    """task-manager's answers about project default and its task t, as stubs."""
    at = datetime.now(UTC)
    project = ProjectView(name="default", description="", created_at=at, created_by="aiop")
    task = TaskView(project="default", name="t", created_at=at, updated_at=at,
                    workflow=msgspec.convert(TASK["workflow"], WorkflowSpec))  # fmt: skip
    schedule = ScheduleView(project="default", name="nightly", cron="0 3 * * *",
                            timezone="UTC", template="mine", policy="skip", catch_up_limit=1,
                            enabled=True, created_at=at, created_by="aiop")  # fmt: skip
    listed = WorkflowListItem(workflow_id=WF, name="build", project="default", state="running",
                              created_at=at, origin=Origin(kind="api"))  # fmt: skip

    def answer(value: Any) -> Any:
        async def stub(_: Any) -> Any:
            return value

        return stub

    return [
        (ep.GET_PROJECT, answer(project)), (ep.ARCHIVE_PROJECT, answer(project)),
        (ep.SAVE_TASK, answer(TaskSaved(task=task, created=True))),
        (ep.GET_TASK, answer(task)), (ep.DELETE_TASK, answer(task)),
        (ep.LIST_TASKS, answer(TaskList(tasks=[task]))),
        (ep.LIST_WORKFLOWS, answer(WorkflowPage(workflows=[listed]))),
        (ep.PRUNE_WORKFLOWS, answer(Pruned(workflow_ids=[]))),
        (ep.WORKFLOW_STATS, answer(WorkflowStats(counts={}, total=0, series=[], since=at,
                                                 until=at, bucket_s=60))),
        *[(e, answer(schedule)) for e in SCHEDULES if e is not ep.LIST_SCHEDULES],
        (ep.LIST_SCHEDULES, answer(ScheduleList(project="default", schedules=[schedule]))),
    ]  # fmt: skip


def trigger_stubs() -> list[tuple[Endpoint[Any, Any], Any]]:
    """task-manager's answers about trigger on-push of project default, as stubs."""
    trigger = msgspec.convert({**TRIGGER, "project": "default"}, Trigger)

    async def saved(_: Any) -> TriggerSaved:
        return TriggerSaved(trigger=trigger, created=True)

    async def one(_: Any) -> Trigger:
        return trigger

    async def listed(_: Any) -> TriggerList:
        return TriggerList(project="default", triggers=[trigger])

    async def events(_: Any) -> EventPage:
        return EventPage(project="default", events=[])

    return [(ep.SAVE_TRIGGER, saved), (ep.GET_TRIGGER, one), (ep.DELETE_TRIGGER, one),
            (ep.LIST_TRIGGERS, listed), (ep.LIST_EVENTS, events)]  # fmt: skip


def webhook_stubs() -> list[tuple[Endpoint[Any, Any], Any]]:
    """The reporter's answers about webhook wh_1 of project default, as stubs."""
    at = datetime.now(UTC)
    hook = Webhook(id="wh_1", project="default", url="https://example.com/hook",
                   events=["workflow.completed"], created_at=at, updated_at=at)  # fmt: skip
    delivery = WebhookDelivery(id="msg_1", webhook_id="wh_1", event_type="workflow.completed",
                               event_id="e1", workflow_id=WF, state="pending", created_at=at,
                               updated_at=at)  # fmt: skip

    def answer(value: Any) -> Any:
        async def stub(_: Any) -> Any:
            return value

        return stub

    created = WebhookCreated(**msgspec.structs.asdict(hook), secret="whsec_c2VjcmV0")
    return [
        (ep.CREATE_WEBHOOK, answer(created)), (ep.GET_WEBHOOK, answer(hook)),
        (ep.UPDATE_WEBHOOK, answer(hook)), (ep.DELETE_WEBHOOK, answer(hook)),
        (ep.LIST_WEBHOOKS, answer(WebhookList(project="default", webhooks=[hook]))),
        (ep.LIST_DELIVERIES, answer(DeliveryList(webhook_id="wh_1", deliveries=[delivery]))),
        (ep.REDELIVER, answer(delivery)),
    ]  # fmt: skip


def routes() -> set[tuple[str, str]]:
    """Every route of the API, as its OpenAPI document lists them."""
    app = create_app(Gateway(Service("gateway", ServiceSettings()), max_body_bytes=1024))
    return {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }


def test_every_route_is_covered() -> None:
    assert routes() - OPEN - AGENT_ONLY == set(CALLS)


async def test_another_projects_caller_gets_404_or_403_everywhere(env: Env) -> None:
    async def view(query: WorkflowQuery) -> WorkflowView:
        return VIEW

    async def report(query: WorkflowQuery) -> WorkflowReport:
        return REPORT

    stubs = await rpc.serve(
        env.nc,
        "stubs",
        [
            (GET_WORKFLOW, view),
            (GET_REPORT, report),
            *project_stubs(),
            *trigger_stubs(),
            *webhook_stubs(),
        ],
    )
    key = SigningKey.load_or_create(env.auth_dir)
    intruder = key.sign(token_claims("intruder", ["other"], datetime.now(UTC), 600))
    owner_key = (await env.client.post("/v1/keys", headers=env.bearer())).json()["key_id"]
    agent = await env.client.post("/v1/agents", json=AGENT, headers=env.bearer())
    agent_id = agent.json()["agent_id"]
    entry = CacheEntry(key=CACHE_KEY, result="r", project="default", step="s",
                       workflow_id=WF, attempt=1, created_at=datetime.now(UTC))  # fmt: skip
    cache = await env.nc.jetstream().key_value(KV_STEP_CACHE)
    await cache.put(cache_entry_key(CACHE_KEY), msgspec.json.encode(entry))
    dead = encode_event(DeadLetterRecorded(
        stream="AIOP", consumer="task-manager", original_subject=f"aiop.workflow.submitted.v1.{WF}",
        stream_seq=1, reason="Permanent: test", deliveries=1, payload=b"{}",
    ), "test")  # fmt: skip
    dlq_seq = (await env.nc.jetstream().publish(dead.subject, dead.body, headers=dead.headers)).seq
    try:
        for (method, _), (template, body, statuses) in CALLS.items():
            path = template.format(owner_key=owner_key, agent_id=agent_id, dlq_seq=dlq_seq)
            theirs = await env.client.request(
                method, path, json=body or None, headers=env.bearer(intruder)
            )
            assert theirs.status_code in statuses, (path, theirs.status_code, theirs.text)
            # The owner gets an answer after, so the intruder's refusal was about ownership.
            mine = await env.client.request(method, path, json=body or None, headers=env.bearer())
            refused = OWNER_REFUSED.get(path.replace(WF, "{WF}"))
            assert mine.status_code == refused if refused else mine.status_code < 400, (
                path, mine.text)  # fmt: skip
    finally:
        await stubs.stop()
