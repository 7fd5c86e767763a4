"""A tool's input from an operation of an OpenAPI document, and back to its request."""

from typing import Any

import jsonschema
import pytest

from aiop.mcp.schemas import NotInDocument, Operation, tool_input

PATH = "/v1/things/{thing_id}/runs"
REF = "#/components/schemas/"
DOCUMENT: dict[str, Any] = {
    "paths": {PATH: {"post": {
        "parameters": [
            {"name": "thing_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[a-z/]+$"}},
            {"name": "project", "in": "query", "schema": {"type": "string", "default": "default"}},
            {"name": "Idempotency-Key", "in": "header", "description": "once per key",
             "schema": {"type": "string"}},
            {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
        ],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": REF + "Run"}}}},
    }}},
    "components": {"schemas": {
        "Run": {"type": "object", "required": ["step"], "properties": {
            "parameters": {"type": "object"}, "step": {"$ref": REF + "Step"}}},
        "Step": {"type": "object", "properties": {"retry": {"$ref": REF + "Retry"}}},
        "Retry": {"type": "object", "properties": {"attempts": {"type": "integer"}}},
        "Unused": {"type": "string"},
    }},
}  # fmt: skip
WAIT = {"wait": {"type": "boolean"}}


def test_the_body_fields_are_arguments_beside_the_parameters() -> None:
    found = tool_input(DOCUMENT, Operation("POST", PATH, leave_out=frozenset({"follow"})), WAIT)
    schema = found.schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(schema["properties"]) == [
        "thing_id", "project", "idempotency_key", "parameters", "step", "wait",
    ]  # fmt: skip
    assert schema["required"] == ["thing_id", "step"]
    assert schema["properties"]["idempotency_key"]["description"] == "once per key"
    assert schema["properties"]["step"] == {"$ref": "#/$defs/Step"}
    assert set(schema["$defs"]) == {"Step", "Retry"}  # what it names, and what they name
    assert schema["$defs"]["Step"]["properties"]["retry"] == {"$ref": "#/$defs/Retry"}
    validator = jsonschema.Draft202012Validator(schema)
    good = {"thing_id": "a/b", "step": {"retry": {"attempts": 2}}}
    assert not list(validator.iter_errors(good))
    wrong = {"thing_id": "a", "step": {"retry": {"attempts": "two"}}, "follow": True}
    assert sorted(e.message for e in validator.iter_errors(wrong)) == [
        "'two' is not of type 'integer'",
        "Additional properties are not allowed ('follow' was unexpected)",
    ]
    assert DOCUMENT["components"]["schemas"]["Step"]["properties"]["retry"]["$ref"] == REF + "Retry"


def test_arguments_go_back_where_the_operation_takes_them() -> None:
    found = tool_input(DOCUMENT, Operation("POST", PATH), WAIT)
    request = found.request({"thing_id": "a/..", "idempotency_key": "k1", "wait": True,
                             "step": {"retry": {}}})  # fmt: skip
    assert request.path == "/v1/things/a%2F../runs"  # a value never adds a path segment
    assert request.params == {}  # project left to the API's default
    assert request.headers == {"Idempotency-Key": "k1"}
    assert request.json == {"step": {"retry": {}}}  # the tool's own wait stays here
    assert found.request({"thing_id": "a", "follow": True}).params == {"follow": True}


def test_a_whole_body_is_one_argument() -> None:
    found = tool_input(DOCUMENT, Operation("POST", PATH, body_as="run"), {})
    assert found.schema["properties"]["run"] == {"$ref": "#/$defs/Run"}
    assert set(found.schema["$defs"]) == {"Run", "Step", "Retry"}
    assert "run" in found.schema["required"]
    assert found.request({"thing_id": "a", "run": {"step": {}}}).json == {"step": {}}


def test_an_operation_the_gateway_lacks_or_a_name_taken_twice_is_refused() -> None:
    with pytest.raises(NotInDocument):
        tool_input(DOCUMENT, Operation("GET", PATH), {})
    with pytest.raises(ValueError, match="two arguments named project"):
        tool_input(DOCUMENT, Operation("POST", PATH), {"project": {"type": "string"}})
