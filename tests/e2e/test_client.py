"""The Python client (``aiop.client``) against the platform ``aiop up`` starts: every
operation it wraps, each answer shaped as its type says; runs waited for and their logs
and events followed over SSE; lists read page after page; a retried submit that starts
one run; real 429 answers (a gateway with a tiny rate limit) and real 503 answers (a
service that does not answer) retried, and an unkeyed POST that is not."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import httpx
import pytest

from aiop.cli.identities import IDENTITY_DIR
from aiop.client import AsyncClient, Client, NotFound, Unauthorized, Unavailable
from aiop.client import types as answers
from aiop.devstack import free_port, until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

LONGEST_S = 10 * 365 * 86400.0  # the longest age a prune takes: nothing is that old
WAIT_S = 180.0
# Every request the clients of this module made: (method, path).
CALLED: set[tuple[str, str]] = set()


def record(response: httpx.Response) -> None:
    CALLED.add((response.request.method, response.request.url.path))


async def arecord(response: httpx.Response) -> None:
    record(response)


def client(platform: Platform, url: str | None = None, **kwargs: Any) -> Client:
    """A client of the platform (or of ``url``) whose requests are recorded."""
    if "api_key" not in kwargs:
        kwargs.setdefault("token", platform.token)
    api = Client(url or platform.gateway_url, **kwargs)
    api.http.event_hooks["response"].append(record)
    return api


def api_key(platform: Platform) -> str:
    stack = json.loads((platform.root / ".aiop" / "stack.json").read_text())
    return open(stack["dev_key_file"]).read().strip()


def spec(marker: str, name: str = "sdk") -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"sdk": marker},
        "steps": [
            {"name": "greet", "run": ["echo", f"hello {marker}"], "cache": False},
            {"name": "after", "run": ["echo", "done"], "needs": ["greet"], "cache": False},
        ],
    }


def typed(value: Any, shape: Any) -> Any:
    """``value``, once it has every key ``shape`` (a TypedDict) requires and no other;
    nested shapes too."""
    if get_origin(shape) is list:
        return [typed(item, get_args(shape)[0]) for item in value]
    if not is_typeddict(shape):
        return value
    assert isinstance(value, dict), value
    assert shape.__required_keys__ <= value.keys() <= shape.__required_keys__ | shape.__optional_keys__, (
        shape.__name__, sorted(value))  # fmt: skip
    for key, hint in get_type_hints(shape).items():
        if get_origin(hint) is NotRequired:
            hint = get_args(hint)[0]
        if get_origin(hint) in (Union, types.UnionType):
            hint = next((a for a in get_args(hint) if a is not type(None)), hint)
        if value.get(key) is not None:
            typed(value[key], hint)
    return value


def test_a_run_waited_for_its_logs_and_events_followed(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    with client(platform, api_key=api_key(platform)) as api:
        assert typed(api.health(), answers.Health) == {"status": "ok"}
        assert api.request("GET", "/healthz") == {"status": "ok"}
        workflow_id = api.submit(spec(marker))
        events = list(api.follow_events(workflow_id))  # from the start, live, to the end
        logs = list(api.follow_logs(workflow_id))
        view = typed(api.wait(workflow_id, timeout=WAIT_S), answers.WorkflowStatus)
        stored = typed(api.workflow_events(workflow_id), answers.WorkflowEventPage)
        page = typed(api.logs(workflow_id, step="greet"), answers.LogPage)
        report = typed(api.report(workflow_id), answers.WorkflowReport)
        assert api.token is not None  # the key was exchanged
    assert view["state"] == "succeeded", view
    assert [s["state"] for s in view["steps"]] == ["succeeded", "succeeded"]
    assert events[-1] == logs[-1] == {"end": "succeeded"}
    entries = [typed(e, answers.WorkflowEventEntry) for e in events if "end" not in e]
    kinds = [e["type"] for e in entries]
    assert (kinds[0], kinds[-1]) == ("aiop.workflow.submitted.v1", "aiop.workflow.completed.v1")
    started = [e["event"]["step"] for e in entries if e["type"] == "aiop.step.started.v1"]
    assert started == ["greet", "after"]
    assert [e["seq"] for e in stored["events"]] == [e["seq"] for e in entries]
    assert f"hello {marker}" in json.dumps(logs[:-1])
    assert [e["step"] for e in page["entries"]] == ["greet"]
    assert report["workflow_id"] == workflow_id


def test_a_run_cancelled_a_failed_one_rerun_and_old_runs_pruned(platform: Platform) -> None:
    slow = {"name": "sdk-slow", "steps": [{"name": "wait", "run": ["sleep", "300"]}]}
    failing = {"name": "sdk-fail", "steps": [
        {"name": "ok", "run": ["echo", uuid.uuid4().hex]},
        {"name": "boom", "run": ["sh", "-c", "exit 3"], "needs": ["ok"], "cache": False},
    ]}  # fmt: skip
    with client(platform) as api:
        slow_id = api.submit(slow)
        assert typed(api.cancel(slow_id), answers.CancelReply)["workflow_id"] == slow_id
        assert api.wait(slow_id, timeout=WAIT_S)["state"] == "cancelled"
        failed_id = api.submit(failing)
        assert api.wait(failed_id, timeout=WAIT_S)["state"] == "failed"
        rerun = api.wait(api.rerun(failed_id), timeout=WAIT_S)
        pruned = typed(api.prune_workflows(LONGEST_S, dry_run=True), answers.RunsPruned)
    assert rerun["origin"] == {"kind": "rerun", "rerun_of": failed_id}
    steps = {s["name"]: s["state"] for s in rerun["steps"]}
    assert steps == {"ok": "cached", "boom": "failed"}  # from where it failed
    assert pruned == {"workflow_ids": [], "workflows_removed": 0, "log_entries_removed": 0,
                      "dry_run": True}  # fmt: skip


def say(marker: str) -> dict[str, Any]:
    """A template with one parameter, its run quick and cacheable."""
    return {
        "version": "1.0.0",
        "parameters": {"type": "object",
                       "properties": {"who": {"type": "string", "default": "world"}}},
        "workflow": {"name": "say", "steps": [
            {"name": "say", "run": ["echo", marker, "${{ params.who }}"]}]},
    }  # fmt: skip


def test_templates_secrets_and_the_step_cache(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    name, secret = f"sdk-{marker}", f"SDK_{marker.upper()}"
    with client(platform) as api:
        created, template = api.register_template(name, say(marker))
        assert (created, api.register_template(name, say(marker))[0]) == (True, False)
        listed = typed(api.templates(), list[answers.TemplateInfo])
        shown = typed(api.template(f"{name}@1.0.0"), answers.Template)
        view = api.wait(api.run_template(name, {"who": "AIOP"}), timeout=WAIT_S)
        # The step's result was stored in the cache: removed again; a prune of what is
        # older than anything removes nothing.
        cached = typed(api.cache_entries(project="default"), answers.CacheList)
        (entry,) = [e for e in cached["entries"] if e["workflow_id"] == view["workflow_id"]]
        removed = typed(api.cache_remove(entry["key"]), answers.CacheEntry)
        pruned = typed(api.cache_prune(project="default", older_than_s=LONGEST_S), answers.Pruned)
        made, stored = api.set_secret(secret, "s3cret", project="default")
        secrets = typed(api.secrets(project="default"), list[answers.SecretView])
        deleted = typed(api.delete_secret(secret, project="default"), answers.SecretView)
    typed(template, answers.Template)
    assert name in {t["name"] for t in listed}
    assert (shown["name"], shown["version"]) == (name, "1.0.0")
    assert (view["state"], view["parameters"]) == ("succeeded", {"who": "AIOP"})
    assert removed["key"] == entry["key"]
    assert pruned == {"removed_entries": 0, "removed_outputs": 0, "freed_bytes": 0}
    assert made
    assert typed(stored, answers.SecretView)["name"] == secret
    assert "s3cret" not in json.dumps([stored, secrets, deleted])
    assert secret in {s["name"] for s in secrets}
    assert deleted["name"] == secret


def test_projects_and_their_tasks(platform: Platform) -> None:
    project = f"sdk-{uuid.uuid4().hex[:6]}"
    task = {"workflow": {"name": "greet", "steps": [{"name": "greet", "run": ["echo", "hi"],
                                                      "cache": False}]}}  # fmt: skip
    with client(platform, api_key=api_key(platform)) as api:
        typed(api.create_project(project, "from the SDK"), answers.ProjectView)
        api.token = None  # the next call exchanges the key again: the token names it
        shown = typed(api.project(project), answers.ProjectView)
        created, saved = api.save_task(project, "greet", task)
        tasks = typed(api.tasks(project), list[answers.TaskView])
        alone = api.wait(api.run_task(project, "greet"), timeout=WAIT_S)
        detail = typed(api.task(project, "greet"), answers.TaskDetail)
        started = typed(api.run_project(project), answers.ProjectRun)
        for run in started["runs"]:
            assert api.wait(run["workflow_id"] or "", timeout=WAIT_S)["state"] == "succeeded"
        together = typed(api.project_run(project, started["set_id"]), answers.ProjectRun)
        deleted = typed(api.delete_task(project, "greet"), answers.TaskView)
        archived = typed(api.archive_project(project), answers.ProjectView)
        everything = typed(api.projects(archived=True), list[answers.ProjectView])
    assert shown["description"] == "from the SDK"
    assert created
    assert typed(saved, answers.TaskView)["name"] == "greet"
    assert [t["name"] for t in tasks] == ["greet"]
    assert (alone["state"], alone["task"]) == ("succeeded", "greet")
    assert [r["workflow_id"] for r in detail["runs"]] == [alone["workflow_id"]]
    assert [r["task"] for r in together["runs"]] == ["greet"]
    assert deleted["name"] == "greet"
    assert archived["archived_at"]
    assert project in {p["name"] for p in everything}


def test_triggers_events_page_after_page_and_schedules(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    name, kind = f"sdk-{marker}", f"com.example.sdk-{marker}"
    with client(platform) as api:
        api.register_template(name, say(marker))
        created, trigger = api.save_trigger(
            {"name": name, "event_type": kind, "target": {"template": name}}
        )
        sent = [
            typed(api.send_event({"ce-specversion": "1.0", "ce-id": f"{marker}-{n}",
                                  "ce-source": "sdk-e2e", "ce-type": kind,
                                  "content-type": "application/json"}, b"{}"),
                  answers.EventSent)
            for n in range(3)
        ]  # fmt: skip
        # Each is recorded once task-manager took it in: a state, looked at until there.
        until_sync(lambda: len(api.list_events(type=kind)["events"]) == 3, 60, "3 events listed")
        first = typed(api.list_events(type=kind, limit=1), answers.EventPage)
        paged = [typed(e, answers.EventRecord) for e in api.iter_events(type=kind, limit=1)]
        triggers = typed(api.list_triggers(), list[answers.Trigger])
        shown = typed(api.get_trigger(name), answers.Trigger)
        deleted = typed(api.delete_trigger(name), answers.Trigger)

        schedule = {"name": name, "cron": "0 3 * * *", "template": name}  # not due in the test
        made = typed(api.create_schedule(schedule), answers.ScheduleView)
        schedules = typed(api.list_schedules(), list[answers.ScheduleView])
        stopped = api.pause_schedule(name)
        resumed = api.resume_schedule(name)
        got = typed(api.get_schedule(name), answers.ScheduleView)
        gone = api.delete_schedule(name)
        with pytest.raises(NotFound):
            api.get_schedule(name)
    assert created
    assert typed(trigger, answers.Trigger)["event_type"] == kind
    assert sorted(e["id"] for e in paged) == sorted(s["id"] for s in sent)
    assert first["next_cursor"]
    assert len(first["events"]) == 1  # one a page: three pages
    assert name in {t["name"] for t in triggers}
    assert shown["target"] == deleted["target"] == {"template": name}
    assert made["enabled"]
    assert not stopped["enabled"]
    assert resumed["enabled"]
    assert name in {s["name"] for s in schedules}
    assert got["name"] == gone["name"] == name


def test_keys_issued_exchanged_and_revoked(platform: Platform) -> None:
    with client(platform) as api:
        issued = typed(api.new_key(), answers.IssuedKey)
        listed = typed(api.keys(), list[answers.ApiKeyView])
        with client(platform, api_key=issued["api_key"]) as other:
            token = typed(other.create_token(issued["api_key"], ["default"]), answers.TokenReply)
            assert other.templates()  # the key stands for the same principal
        revoked = typed(api.revoke_key(issued["key_id"]), answers.ApiKeyView)
        with client(platform, api_key=issued["api_key"]) as gone, pytest.raises(Unauthorized):
            gone.keys()
    assert issued["key_id"] in {k["key_id"] for k in listed}
    assert (token["principal"], token["projects"]) == ("dev", ["default"])
    assert revoked["revoked_at"]


def test_runs_are_paged_and_a_submit_with_one_key_starts_one_run(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    key = f"sdk-{marker}"
    with client(platform) as api:
        ids = [api.submit(spec(marker)) for _ in range(2)]
        again = [api.submit(spec(marker), idempotency_key=key) for _ in range(2)]
        assert again[0] == again[1]  # the same key and body: the same run
        ids.append(again[0])
        for workflow_id in ids:
            assert api.wait(workflow_id, timeout=WAIT_S)["state"] == "succeeded"
        paged = [w["workflow_id"] for w in api.iter_workflows(label=f"sdk={marker}", limit=1)]
        first = typed(api.list_workflows(label=f"sdk={marker}", limit=1), answers.WorkflowPage)
    assert sorted(paged) == sorted(ids)
    assert len(paged) == 3
    assert first["next_cursor"]  # one per page: there was more than one page
    assert paged[0] == first["workflows"][0]["workflow_id"]


def test_an_unknown_workflow_is_not_found(platform: Platform) -> None:
    with client(platform) as api:
        with pytest.raises(NotFound) as raised:
            api.status("no-such-workflow")
        with pytest.raises(NotFound):
            api.cancel("no-such-workflow")
        with pytest.raises(NotFound):
            api.wait("no-such-workflow")
    assert raised.value.status == 404
    assert raised.value.problem["status"] == 404


async def test_the_async_client_does_the_same(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    async with AsyncClient(platform.gateway_url, api_key=api_key(platform)) as api:
        api.http.event_hooks["response"].append(arecord)
        workflow_id = await api.submit(spec(marker))
        events = [item async for item in api.follow_events(workflow_id)]
        followed = [entry async for entry in api.follow_logs(workflow_id)]
        view = await api.wait(workflow_id, timeout=WAIT_S)
        listed = [w["workflow_id"] async for w in api.iter_workflows(label=f"sdk={marker}")]
        templates = await api.templates()
        with pytest.raises(NotFound):
            await api.template("no-such-template")
    assert view["state"] == "succeeded"
    assert events[-1] == followed[-1] == {"end": "succeeded"}
    assert listed == [workflow_id]
    assert "ci-cd" in {t["name"] for t in templates}


@contextlib.contextmanager
def replica(platform: Platform, **settings: str) -> Iterator[str]:
    """A second gateway on the platform's bus, as a replica runs, its AIOP_* ``settings``
    its own: its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")} | {
        "AIOP_NATS_URL": platform.nats_url,
        "AIOP_NATS_SEED_FILE": str(platform.root / ".aiop" / IDENTITY_DIR / "gateway.nk"),
        "AIOP_CREATE_STREAMS": "false",
        "AIOP_GATEWAY_PORT": str(port),
        **settings,
    }
    process = subprocess.Popen([sys.executable, "-m", "aiop.gateway"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        return process.poll() is not None  # it died: said below

    try:
        until_sync(answers, 60, "the second gateway answering")
        assert process.poll() is None, "the second gateway exited"
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_429s_from_the_gateway_are_retried_after_its_retry_after(platform: Platform) -> None:
    statuses: list[int] = []
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)  # the wait the client chose, kept: the window must pass

    # One request a second for the principal: of three at once, one at least is refused.
    with replica(platform, AIOP_RATE_LIMIT_PER_PRINCIPAL="1/second") as url, \
            client(platform, url, sleep=sleep) as api:  # fmt: skip
        api.http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        listed = [api.templates() for _ in range(3)]
    assert all(listed)
    assert 429 in statuses
    assert statuses.count(200) == 3  # each call, once through
    assert len(statuses) == 3 + len(waits)  # one more request for each 429
    assert waits
    assert all(w >= 1 for w in waits)  # the gateway's Retry-After, not the backoff


@contextlib.contextmanager
def paused(platform: Platform, service: str) -> Iterator[int]:
    """``service`` stopped (SIGSTOP) until the block ends or it is continued: it takes
    requests and answers none. Its pid."""
    pid = platform.pid_of(service)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_503_is_retried_and_an_unkeyed_post_is_not(platform: Platform) -> None:
    with client(platform) as api:
        workflow_id = api.submit(spec(uuid.uuid4().hex[:8]))
        api.wait(workflow_id, timeout=WAIT_S)
        statuses: list[int] = []
        with paused(platform, "reporter") as reporter:

            def on_answer(response: httpx.Response) -> None:
                statuses.append(response.status_code)
                if response.status_code == 503:
                    os.kill(reporter, signal.SIGCONT)  # it answers the retry

            api.http.event_hooks["response"].append(on_answer)
            report = api.report(workflow_id)  # the gateway's ask times out: 503
        assert report["workflow_id"] == workflow_id
        assert (statuses[0], statuses[-1]) == (503, 200)

        # Issuing a key is no call to repeat: auth may have issued it and not been heard.
        statuses.clear()
        api.http.event_hooks["response"] = [record, lambda r: statuses.append(r.status_code)]
        with paused(platform, "auth"), pytest.raises(Unavailable):
            api.new_key()
    assert statuses == [503]


def test_a_webhook_made_changed_listed_and_removed(platform: Platform) -> None:
    """Its deliveries are tested in tests/e2e/test_webhooks.py; here, each call's shape."""
    with client(platform) as api:
        made = typed(api.create_webhook("http://127.0.0.1:9/hook", ["workflow.failed"],
                                        description="sdk"), answers.WebhookCreated)  # fmt: skip
        hook_id = made["id"]
        assert made["secret"].startswith("whsec_")
        assert typed(api.get_webhook(hook_id), answers.Webhook)["description"] == "sdk"
        assert hook_id in [h["id"] for h in typed(api.list_webhooks(), list[answers.Webhook])]
        assert typed(api.webhook_deliveries(hook_id), list[answers.WebhookDelivery]) == []
        with pytest.raises(NotFound):
            api.redeliver(hook_id, "msg_none")
        off = typed(api.update_webhook(hook_id, {"enabled": False}), answers.Webhook)
        assert off["enabled"] is False
        assert typed(api.delete_webhook(hook_id), answers.Webhook)["id"] == hook_id


def test_the_operator_reads_answer_in_their_shapes(platform: Platform) -> None:
    """Each is tested for what it says in its own tests; here, each call's shape."""
    marker = uuid.uuid4().hex[:8]
    with client(platform) as api:
        workflow_id = api.submit(spec(marker, "operator-reads"))
        assert api.wait(workflow_id, timeout=60)["state"] == "succeeded"
        assert typed(api.executors(), list[answers.ExecutorView])
        typed(api.cache_stats(), answers.CacheStats)
        stats = typed(api.stats(), answers.WorkflowStats)
        assert stats["total"] >= 1
        trace = until_sync(lambda: _spans(api, workflow_id), timeout_s=30, what="its spans")
        typed(trace, answers.WorkflowTrace)
        typed(api.dead_letters(limit=5), answers.DeadLetterPage)
        with pytest.raises(NotFound):
            api.replay_dead_letter(999_999_999)
        page = typed(
            api.stream_events(workflow=workflow_id, since="10m", limit=50), answers.TailPage
        )
        assert {e["workflow_id"] for e in page["events"]} == {workflow_id}


def _spans(api: Client, workflow_id: str) -> Any:
    with contextlib.suppress(NotFound):  # written by each service a moment after the fact
        trace = api.trace(workflow_id)
        return trace if trace["spans"] else None
    return None


def test_every_operation_of_the_gateway_was_called(platform: Platform) -> None:
    if not CALLED:
        pytest.skip("run with the rest of this module: it checks what they called")
    document = httpx.get(f"{platform.gateway_url}/openapi.json", timeout=30).json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        # An agent's routes: the agent SDK (aiop.client.agent) takes them, in its own tests.
        if not path.startswith("/v1/agents")
    }

    def called(method: str, template: str) -> bool:
        pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", template))
        return any(m == method and re.fullmatch(pattern, p) for m, p in CALLED)

    assert {op for op in served if not called(*op)} == set()
