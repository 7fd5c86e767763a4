"""Gateway logic without servers: reading submissions, ids, recent ids, problem details."""

import httpx
import msgspec
import pytest

from aiop.contracts.queries import StepView, WorkflowReport, WorkflowView
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.domain.finished import FinishedWorkflows, is_final
from aiop.gateway.domain.grants import Grants
from aiop.gateway.domain.recent import RecentSubmissions
from aiop.gateway.domain.status import encode_status
from aiop.gateway.domain.submission import (
    BadShape,
    CannotRun,
    MalformedBody,
    parse_spec,
    workflow_id_for,
)
from aiop.servicekit import Service, ServiceSettings


def test_a_good_body_becomes_a_spec() -> None:
    spec = parse_spec(b'{"name":"wf","steps":[{"name":"a","run":["true"],"timeout":5}]}')
    assert (spec.name, spec.project, spec.steps[0].run) == ("wf", "default", ["true"])


def test_body_errors_are_told_apart() -> None:
    with pytest.raises(MalformedBody):
        parse_spec(b"{nope")
    with pytest.raises(BadShape) as shape:
        parse_spec(b'{"steps":[{"name":1,"run":["x"],"env":{"A":2}}],"labels":[]}')
    assert {e.pointer for e in shape.value.errors} == {
        "/name",
        "/steps/0/name",
        "/steps/0/env",
        "/labels",
    }
    with pytest.raises(CannotRun) as cannot:
        parse_spec(b'{"name":"wf","steps":[{"name":"a","run":[""],"needs":["z"]}]}')
    assert len(cannot.value.problems) == 2


def test_workflow_ids() -> None:
    assert workflow_id_for("dev", "k") == workflow_id_for("dev", "k")
    assert workflow_id_for("dev", "k") != workflow_id_for("ops", "k")
    assert workflow_id_for("dev", None) != workflow_id_for("dev", None)
    assert len(workflow_id_for("dev", "k")) == 32


def test_recent_submissions_expire_and_stay_bounded() -> None:
    recent = RecentSubmissions(ttl_s=10, max_entries=2)
    recent.add("a", "wf", "default", now=0)
    view = recent.view("a", now=5)
    assert view is not None
    assert (view.state, view.steps, view.project) == ("submitted", [], "default")
    assert recent.view("a", now=11) is None
    recent.add("b", "wf", "default", now=1)
    recent.add("c", "wf", "default", now=2)
    assert recent.view("a", now=3) is None  # the oldest made room
    assert recent.view("c", now=3) is not None


def test_status_body_is_view_plus_report() -> None:
    view = WorkflowView(workflow_id="w", name="n", project="p", state="running", steps=[])
    report = msgspec.json.encode(WorkflowReport(workflow_id="w", outcome="running"))
    body = msgspec.json.decode(encode_status(view, report))
    assert body["state"] == "running"
    assert body["report"]["outcome"] == "running"
    assert msgspec.json.decode(encode_status(view, None))["report"] is None


@pytest.fixture
def client() -> httpx.AsyncClient:
    # The broker is never connected: these requests must not need NATS.
    never_connected = ServiceSettings(nats_url="nats://127.0.0.1:1")
    app = create_app(Gateway(Service("gateway-test", never_connected), max_body_bytes=1024))

    @app.get("/typed/{n}")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("PUT", "/healthz", 405),
        ("GET", "/typed/x", 422),
        ("GET", "/v1/workflows/x", 401),
        ("POST", "/v1/workflows", 401),
    ],
)
async def test_every_error_is_a_problem(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    reply = await client.request(method, path)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["status"] == status
    assert body["instance"] == path
    assert {"type", "title", "detail"} <= body.keys()
    if status == 422:
        assert body["errors"][0]["pointer"] == "/path/n"
    if status == 401:
        assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_token_exchange_checks_its_body_first(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/tokens", content=b"{")).status_code == 400
    assert (await client.post("/v1/tokens", json={"key": 1})).status_code == 422
    assert (await client.post("/v1/tokens", content=b"x" * 2000)).status_code == 413


def test_grants_expire_and_only_grants_are_kept() -> None:
    now = [100.0]
    grants = Grants(ttl=5.0, capacity=2, clock=lambda: now[0])
    key = ("alice", "default", "workflow:submit")
    assert not grants.allows(key)
    grants.grant(key)
    assert grants.allows(key)
    assert not grants.allows(("alice", "other", "workflow:submit"))
    now[0] += 5.0
    assert not grants.allows(key)  # expired: auth is asked again
    grants.grant(("a", "p", "x"))
    grants.grant(("b", "p", "x"))
    grants.grant(("c", "p", "x"))  # over capacity: the old ones are forgotten
    assert grants.allows(("c", "p", "x"))
    assert not grants.allows(("a", "p", "x"))


def _view(state: str, step_state: str) -> WorkflowView:
    step = StepView(name="a", state=step_state, needs=[], attempt=1)
    return WorkflowView(workflow_id="wf", name="n", project="p", state=state, steps=[step])


def test_only_a_settled_workflow_is_final() -> None:
    done = WorkflowReport(workflow_id="wf", outcome="succeeded", steps_total=1, steps_succeeded=1)
    assert is_final(_view("succeeded", "succeeded"), done)
    assert not is_final(_view("running", "running"), done)  # not terminal yet
    assert not is_final(_view("succeeded", "running"), done)  # last step event not folded
    assert not is_final(_view("succeeded", "succeeded"), None)  # reporter did not answer
    behind = WorkflowReport(workflow_id="wf", outcome="succeeded", steps_total=1)
    assert not is_final(_view("succeeded", "succeeded"), behind)  # reporter still folding
    finished = FinishedWorkflows(capacity=1)
    finished.keep("wf1", "p", b"{}")
    finished.keep("wf2", "p", b"{}")
    assert finished.get("wf1") is None
    assert finished.get("wf2") == ("p", b"{}")
