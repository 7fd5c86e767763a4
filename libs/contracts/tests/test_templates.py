"""Templates render into workflows: defaults filled in, parameters checked against the
schema, placeholders typed where they stand alone, files inlined from the template's
folder, and what cannot render refused with every reason."""

from pathlib import Path

import pytest

from aiop.contracts.templates import (
    BadParameters,
    Template,
    check_template,
    inline_files,
    render,
    split_ref,
    version_order,
)
from aiop.contracts.workflow import InvalidWorkflow

SCHEMA = {
    "type": "object",
    "properties": {
        "epochs": {"type": "integer", "minimum": 1, "default": 5},
        "name": {"type": "string", "default": "model"},
        "verbose": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}
WORKFLOW = {
    "name": "train",
    "steps": [
        {
            "name": "fit",
            "run": ["python3", "train.py", "--epochs=${{ params.epochs }}", "${{ params.name }}"],
            "timeout": "${{ params.epochs }}",
            "env": {"VERBOSE": "${{params.verbose}}"},
        }
    ],
}


def template(**changes: object) -> Template:
    fields: dict[str, object] = {"name": "train", "version": "1.0.0", "parameters": SCHEMA,
                                 "workflow": WORKFLOW, "project": "default"}  # fmt: skip
    return Template(**(fields | changes))  # type: ignore[arg-type]


def test_defaults_fill_in_and_a_lone_placeholder_keeps_its_type() -> None:
    spec, filled = render(template(), {"epochs": 3}, "team-a")
    assert filled == {"epochs": 3, "name": "model", "verbose": False}
    step = spec.steps[0]
    assert step.run == ["python3", "train.py", "--epochs=3", "model"]
    assert step.timeout == 3  # "3", read as a number where one is wanted
    assert step.env == {"VERBOSE": "false"}  # as JSON writes it
    assert spec.project == "team-a"


def test_parameters_the_schema_refuses_are_each_named() -> None:
    with pytest.raises(BadParameters) as refused:
        render(template(), {"epochs": 0, "colour": "red"}, "default")
    errors = refused.value.errors
    assert any(e.startswith("epochs: 0 is less than the minimum of 1") for e in errors)
    assert any("colour" in e and "(parameters)" in e for e in errors)


def test_an_array_parameter_standing_alone_stays_an_array() -> None:
    schema = {"type": "object", "properties": {"deps": {"type": "array", "default": ["a"]}}}
    steps = [{"name": "a", "run": ["true"]},
             {"name": "b", "run": ["true"], "needs": "${{ params.deps }}"}]  # fmt: skip
    spec, _ = render(template(parameters=schema, workflow={"name": "w", "steps": steps}), {}, "p")
    assert spec.steps[1].needs == ["a"]


def test_a_template_without_parameters_takes_none() -> None:
    bare = template(
        parameters={}, workflow={"name": "w", "steps": [{"name": "s", "run": ["true"]}]}
    )
    assert render(bare, {}, "default")[1] == {}
    with pytest.raises(BadParameters, match="takes no parameters"):
        render(bare, {"x": 1}, "default")


def test_a_rendered_workflow_that_cannot_run_says_why() -> None:
    looping = template(
        workflow={"name": "w", "steps": [{"name": "s", "run": ["true"], "needs": ["s"]}]}
    )
    with pytest.raises(InvalidWorkflow, match="needs itself"):
        render(looping, {}, "default")


def test_check_template_names_every_problem() -> None:
    bad = template(name="Not Valid", version="", parameters={"type": "object", "properties": {"x": {"type": "nope"}}},
                   workflow={**WORKFLOW, "name": "${{ params.missing }}"})  # fmt: skip
    problems = check_template(bad)
    assert any("name 'Not Valid'" in p for p in problems)
    assert any("version ''" in p for p in problems)
    assert any("not a valid JSON Schema" in p for p in problems)
    assert any("params.missing" in p for p in problems)
    assert check_template(template()) == []
    broken = template(workflow={"name": "w", "steps": []})
    assert check_template(broken) == ["the workflow: a workflow needs at least one step"]


def test_files_are_inlined_from_the_templates_folder(tmp_path: Path) -> None:
    (tmp_path / "project" / "pkg").mkdir(parents=True)
    (tmp_path / "project" / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "project" / "README").write_text("hi\n")
    (tmp_path / "data.csv").write_text("x\n1\n")
    document = {"workflow": {"name": "w", "steps": [{"name": "s", "run": ["true"], "files": {
        "src": {"from": "project"}, "in.csv": {"from": "data.csv"}, "inline.txt": "as is"}}]}}  # fmt: skip
    files = inline_files(document, tmp_path)["workflow"]["steps"][0]["files"]
    assert files == {"src/README": "hi\n", "src/pkg/a.py": "A = 1\n", "in.csv": "x\n1\n",
                     "inline.txt": "as is"}  # fmt: skip


def test_versions_order_by_number_and_refs_split() -> None:
    assert sorted(["1.10.0", "1.9.2", "1.2", "2"], key=version_order) == [
        "1.2",
        "1.9.2",
        "1.10.0",
        "2",
    ]
    assert split_ref("ci-cd@1.2.0") == ("ci-cd", "1.2.0")
    assert split_ref("ci-cd") == ("ci-cd", None)
