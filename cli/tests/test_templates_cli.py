"""``aiop run`` types each ``-p key=value`` by the template's schema, and ``aiop templates
register`` sends the file with its ``{from: ...}`` files read beside it. The platform's
side is covered by the gateway's and the end-to-end tests."""

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aiop.cli import common, main, templates
from aiop.cli.templates import parse_parameters

SCHEMA = {"type": "object", "properties": {
    "epochs": {"type": "integer"}, "rate": {"type": "number"}, "name": {"type": "string"},
    "fast": {"type": "boolean"}, "tags": {"type": "array"}, "either": {"type": ["integer", "string"]}}}  # fmt: skip


def test_parameters_are_typed_by_the_schema() -> None:
    given = ["epochs=3", "rate=0.5", "name=007", "fast=true", 'tags=["a"]', "either=x", "free=1"]
    assert parse_parameters(given, SCHEMA) == {
        "epochs": 3, "rate": 0.5, "name": "007", "fast": True, "tags": ["a"], "either": "x",
        "free": "1",  # not in the schema: text, and the schema decides whether that is allowed
    }  # fmt: skip


@pytest.mark.parametrize("pair", ["epochs=three", "novalue", "=3"])
def test_a_parameter_that_cannot_be_read_is_refused(pair: str) -> None:
    with pytest.raises(typer.Exit) as stopped:
        parse_parameters([pair], SCHEMA)
    assert stopped.value.exit_code == 2


class FakeGateway:
    def __init__(self) -> None:
        self.registered: list[tuple[str, dict[str, Any], str]] = []
        self.runs: list[tuple[str, dict[str, Any]]] = []

    def register_template(self, name: str, doc: dict[str, Any], project: str) -> tuple[bool, Any]:
        self.registered.append((name, doc, project))
        return True, {"name": name, "version": doc["version"]}

    def template(self, ref: str, project: str) -> dict[str, Any]:
        return {"name": ref, "version": "1", "parameters": SCHEMA, "workflow": {}}

    def run_template(self, ref: str, params: dict[str, Any], project: str, key: str | None) -> str:
        self.runs.append((ref, params))
        return "wf-1"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)
    monkeypatch.setattr(templates, "gateway", lambda: gateway)
    return gateway


def test_register_reads_files_beside_the_template(tmp_path: Path, fake: FakeGateway) -> None:
    (tmp_path / "say.py").write_text("print('hi')\n")
    (tmp_path / "t.yaml").write_text(
        "name: greet\nversion: '2'\nworkflow:\n  name: greet\n  steps:\n"
        "    - {name: s, run: [python3, say.py], files: {say.py: {from: say.py}}}\n"
    )
    result = CliRunner().invoke(main.app, ["templates", "register", str(tmp_path / "t.yaml")])
    assert result.exit_code == 0, result.output
    assert "greet@2 registered in default" in result.output
    name, doc, project = fake.registered[0]
    assert (name, project) == ("greet", "default")
    assert doc["workflow"]["steps"][0]["files"] == {"say.py": "print('hi')\n"}
    missing = tmp_path / "gone.yaml"
    missing.write_text("name: x\nversion: '1'\nworkflow: {name: x, steps: [{name: s, run: [a],"
                       " files: {a: {from: nowhere.txt}}}]}\n")  # fmt: skip
    refused = CliRunner().invoke(main.app, ["templates", "register", str(missing)])
    assert refused.exit_code == 2
    assert "does not exist" in refused.output


def test_run_sends_typed_parameters(fake: FakeGateway) -> None:
    result = CliRunner().invoke(main.app, ["run", "train@1", "-p", "epochs=4", "-p", "name=x"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "wf-1"
    assert fake.runs == [("train@1", {"epochs": 4, "name": "x"})]
