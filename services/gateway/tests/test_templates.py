"""Templates through the gateway against a real nats-server: registered once per version,
listed with their versions, run with parameters checked against their schema, and the
submission records the version and the parameters; built-in ones are every project's."""

import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aiop.contracts.events import WorkflowSubmitted

from .conftest import Env, running

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"greeting": {"type": "string", "default": "hello", "maxLength": 20},
                   "times": {"type": "integer", "minimum": 1, "default": 2}},
    "additionalProperties": False,
}  # fmt: skip


def body(version: str, text: str = "${{ params.greeting }}") -> dict[str, Any]:
    steps = [{"name": "say", "run": ["echo", text, "${{ params.times }}"]}]
    return {"version": version, "description": "says hello", "parameters": SCHEMA,
            "workflow": {"name": "hello", "steps": steps}}  # fmt: skip


def fresh() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"  # the bus outlives a test: names must not meet


async def submitted(env: Env, workflow_id: str) -> WorkflowSubmitted:
    msg = await env.nc.jetstream().get_last_msg("AIOP", f"aiop.workflow.submitted.v1.{workflow_id}")
    return msgspec.json.decode(msg.data, type=WorkflowSubmitted)


async def test_a_version_is_registered_once_and_listed_with_the_others(env: Env) -> None:
    name = fresh()
    first = await env.client.put(f"/v1/templates/{name}", json=body("1.9.0"), headers=env.bearer())
    assert first.status_code == 201, first.text
    assert first.json()["created_at"]
    again = await env.client.put(f"/v1/templates/{name}", json=body("1.9.0"), headers=env.bearer())
    assert again.status_code == 200
    changed = await env.client.put(
        f"/v1/templates/{name}", json=body("1.9.0", "bye"), headers=env.bearer()
    )
    assert changed.status_code == 409
    assert "registered already" in changed.json()["detail"]
    newer = await env.client.put(f"/v1/templates/{name}", json=body("1.10.0"), headers=env.bearer())
    assert newer.status_code == 201

    listed = (await env.client.get("/v1/templates", headers=env.bearer())).json()
    mine = next(t for t in listed["templates"] if t["name"] == name)
    assert (mine["version"], mine["versions"]) == ("1.10.0", ["1.9.0", "1.10.0"])
    assert mine["builtin"] is False
    latest = await env.client.get(f"/v1/templates/{name}", headers=env.bearer())
    assert latest.json()["version"] == "1.10.0"
    older = await env.client.get(f"/v1/templates/{name}@1.9.0", headers=env.bearer())
    assert older.json()["workflow"]["name"] == "hello"
    missing = await env.client.get(f"/v1/templates/{name}@7", headers=env.bearer())
    assert missing.status_code == 404


async def test_an_invalid_template_is_refused_with_every_reason(env: Env) -> None:
    name = fresh()
    bad = body("1", "${{ params.nope }}") | {"parameters": {"type": "object", "properties": {
        "greeting": {"type": "wrong"}}}}  # fmt: skip
    answer = await env.client.put(f"/v1/templates/{name}", json=bad, headers=env.bearer())
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["type"] == "urn:aiop:problem:invalid-template"
    details = [e["detail"] for e in problem["errors"]]
    assert any("not a valid JSON Schema" in d for d in details)
    assert any("params.nope" in d for d in details)
    wrong_name = await env.client.put(
        "/v1/templates/Bad_Name", json=body("1"), headers=env.bearer()
    )
    assert wrong_name.status_code == 422


async def test_a_run_renders_checks_parameters_and_records_the_version(env: Env) -> None:
    name = fresh()
    await env.client.put(f"/v1/templates/{name}", json=body("2.0.0"), headers=env.bearer())
    refused = await env.client.post(
        f"/v1/templates/{name}/runs", json={"parameters": {"times": 0, "colour": "red"}},
        headers=env.bearer(),
    )  # fmt: skip
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == "urn:aiop:problem:bad-parameters"
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {"/parameters/times", "/parameters"}

    ran = await env.client.post(
        f"/v1/templates/{name}@2.0.0/runs", json={"parameters": {"times": 3}},
        headers={**env.bearer(), "Idempotency-Key": f"run-{name}"},
    )  # fmt: skip
    assert ran.status_code == 202, ran.text
    assert ran.json()["template"] == f"{name}@2.0.0"
    event = await submitted(env, ran.json()["workflow_id"])
    assert event.template == f"{name}@2.0.0"
    assert event.parameters == {"greeting": "hello", "times": 3}
    assert event.spec.steps[0].run == ["echo", "hello", "3"]
    twice = await env.client.post(
        f"/v1/templates/{name}@2.0.0/runs", json={"parameters": {"times": 3}},
        headers={**env.bearer(), "Idempotency-Key": f"run-{name}"},
    )  # fmt: skip
    assert twice.json()["workflow_id"] == ran.json()["workflow_id"]
    unknown = await env.client.post("/v1/templates/no-such-template/runs", json={},
                                    headers=env.bearer())  # fmt: skip
    assert unknown.status_code == 404


async def test_built_in_templates_are_every_projects_and_keep_their_names(
    nats_url: str, tmp_path: Path
) -> None:
    name = fresh()
    folder = tmp_path / "templates" / name
    folder.mkdir(parents=True)
    (folder / "say.txt").write_text("from a file\n")
    (folder / "template.yaml").write_text(
        f"name: {name}\nversion: '1'\nworkflow:\n  name: w\n  steps:\n"
        "    - name: s\n      run: [cat, say.txt]\n      files: {say.txt: {from: say.txt}}\n"
    )
    async with running(nats_url, tmp_path, templates_dir=tmp_path / "templates") as env:
        shown = await env.client.get(f"/v1/templates/{name}", headers=env.bearer())
        assert shown.status_code == 200, shown.text
        assert shown.json()["workflow"]["steps"][0]["files"] == {"say.txt": "from a file\n"}
        listed = (await env.client.get("/v1/templates", headers=env.bearer())).json()
        assert next(t for t in listed["templates"] if t["name"] == name)["builtin"] is True
        taken = await env.client.put(f"/v1/templates/{name}", json=body("9"), headers=env.bearer())
        assert taken.status_code == 409
        ran = await env.client.post(f"/v1/templates/{name}/runs", headers=env.bearer())
        assert ran.status_code == 202, ran.text
