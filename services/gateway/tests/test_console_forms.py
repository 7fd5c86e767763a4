"""The console's pure pieces: a template's form made from its JSON Schema and its answer
turned back into parameters; a dead letter's replay payload; the tail's filters; the
fleet's numbers."""

from typing import Any

import pytest

from aiop.gateway.console import forms
from aiop.gateway.console.events import DEFAULT_SUBJECTS, replay_payload, tail_query
from aiop.gateway.console.fleet import engine_state, percent, size

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "count"],
    "properties": {
        "name": {"type": "string", "description": "Who to greet."},
        "format": {"type": "string", "enum": ["tar.gz", "zip"], "default": "tar.gz"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.05},
        "verbose": {"type": "boolean", "default": True},
        "tags": {"type": "array", "default": ["a"]},
        "extra": {"type": "object"},
        "note": {"type": ["string", "null"], "title": "A note"},
    },
}


def by_name(fields: list[forms.Field]) -> dict[str, forms.Field]:
    return {f.name: f for f in fields}


def test_each_type_has_its_input_with_defaults_bounds_and_help() -> None:
    f = by_name(forms.fields(SCHEMA))
    assert [x.name for x in forms.fields(SCHEMA)] == list(SCHEMA["properties"])  # schema order
    assert (f["name"].kind, f["name"].required, f["name"].help) == ("text", True, "Who to greet.")
    assert (f["format"].kind, f["format"].options, f["format"].value) == (
        "select", ("tar.gz", "zip"), "tar.gz")  # fmt: skip
    assert (f["count"].kind, f["count"].step, f["count"].minimum, f["count"].maximum) == (
        "number", "1", "1", "10")  # fmt: skip
    assert (f["count"].value, f["count"].required) == ("3", True)
    assert (f["ratio"].step, f["ratio"].value, f["ratio"].maximum) == ("any", "0.05", "1")
    assert (f["verbose"].kind, f["verbose"].checked) == ("checkbox", True)
    assert (f["tags"].kind, f["tags"].value) == ("json", '[\n  "a"\n]')
    assert (f["extra"].kind, f["extra"].value) == ("json", "")
    assert (f["note"].kind, f["note"].label) == ("text", "A note")  # nullable: its other type
    assert f["name"].input_name == "param.name"


def test_a_form_drawn_again_shows_what_was_sent_and_the_errors() -> None:
    sent = {"param.name": "x", "param.count": "12", "param.ratio": "abc", "param.tags": "[1,"}
    f = by_name(forms.fields(SCHEMA, sent, {"count": "must be at most 10"}))
    assert (f["count"].value, f["count"].error) == ("12", "must be at most 10")
    assert f["tags"].value == "[1,"
    assert f["ratio"].value == ""  # a number input cannot hold it: the error says what it was
    assert f["verbose"].checked is False  # not sent: unticked, not its default
    assert f["format"].value == ""


def test_the_answer_is_converted_by_the_schema_types() -> None:
    sent = {
        "param.name": "world", "param.format": "zip", "param.count": " 4 ",
        "param.ratio": "0.5", "param.tags": '["x", "y"]', "param.extra": '{"k": 1}',
    }  # fmt: skip
    params, errors = forms.parse(SCHEMA, sent)
    assert errors == {}
    assert params == {"name": "world", "format": "zip", "count": 4, "ratio": 0.5,
                      "verbose": False, "tags": ["x", "y"], "extra": {"k": 1}}  # fmt: skip


def test_empty_optional_fields_are_left_to_the_template_defaults() -> None:
    params, errors = forms.parse(SCHEMA, {"param.name": "a", "param.count": "1",
                                          "param.verbose": "true", "param.ratio": "  "})  # fmt: skip
    assert errors == {}
    assert params == {"name": "a", "count": 1, "verbose": True}


@pytest.mark.parametrize(
    ("field", "text", "error"),
    [
        ("count", "1.5", "not a whole number"),
        ("count", "0", "at least 1"),
        ("count", "11", "at most 10"),
        ("ratio", "abc", "not a number"),
        ("ratio", "nan", "not a finite number"),
        ("tags", "[1,", "not JSON"),
        ("tags", '{"a": 1}', "must be a JSON array"),
        ("extra", "[]", "must be a JSON object"),
        ("format", "rar", "must be one of tar.gz, zip"),
    ],
)
def test_a_bad_field_is_an_error_next_to_it(field: str, text: str, error: str) -> None:
    sent = {"param.name": "a", "param.count": "2", f"param.{field}": text}
    params, errors = forms.parse(SCHEMA, sent)
    assert error in errors[field]
    assert field not in params


def test_a_required_field_left_empty_is_an_error() -> None:
    _, errors = forms.parse(SCHEMA, {"param.name": ""})
    assert errors == {"name": "required", "count": "required"}


def test_numbers_keep_whole_values_whole() -> None:
    assert isinstance(forms.convert("2", "number", {}), int)
    assert forms.convert("2.0", "number", {}) == 2.0
    assert forms.convert("1e3", "number", {}) == 1000.0


def test_no_schema_is_no_fields() -> None:
    assert forms.fields(None) == []
    assert forms.parse({}, {"param.x": "1"}) == ({}, {})


def test_the_api_refusals_go_next_to_the_fields_they_name() -> None:
    errors = forms.api_errors([
        {"pointer": "/parameters/count", "detail": "too big"},
        {"pointer": "/parameters", "detail": "unknown property"},
        "something else",
    ])  # fmt: skip
    assert errors == {"count": "too big", "": "unknown property; something else"}


def test_a_replay_sends_the_message_as_it_was_unless_it_was_changed() -> None:
    item = {"payload": "line one\nline two"}
    assert replay_payload(item, "line one\r\nline two") is None  # the browser's line ends
    assert replay_payload(item, '{"fixed": true}\r\n') == '{"fixed": true}\n'


def test_the_tail_filters_default_to_aiop_tails_subjects() -> None:
    assert tail_query({}) == {"subjects": DEFAULT_SUBJECTS, "workflow": "", "since": ""}
    chosen = tail_query({"subjects": "  aiop.step.>   aiop.dlq.> ", "since": "5m "})
    assert (chosen["subjects"], chosen["since"]) == ("aiop.step.> aiop.dlq.>", "5m")


def test_the_fleet_numbers() -> None:
    assert (percent(None), percent(0.853)) == ("", "85%")
    assert (size(512), size(2048), size(5 * 1024**3)) == ("512 B", "2.0 KiB", "5.0 GiB")
    assert [engine_state(e) for e in (None, {"reachable": None}, {"reachable": True},
                                      {"reachable": False})] == ["unknown", "unknown", "up", "down"]  # fmt: skip
