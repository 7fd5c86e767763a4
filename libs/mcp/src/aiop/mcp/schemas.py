"""A tool's input as the API states it: the JSON Schema of an operation's parameters and
body, taken from the gateway's OpenAPI document (which the gateway makes from the
contracts' structs and the checks its routes make), and the way back from a tool's
arguments to that operation's request. One source: a field the API gains, or a
constraint it tightens, is the tool's at once."""

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

Json = dict[str, Any]
REF_PREFIX = "#/components/schemas/"
Where = Literal["path", "query", "header", "body", "whole-body"]


class NotInDocument(LookupError):
    """The gateway's document has no such operation: a gateway older than this server."""


@dataclass(frozen=True)
class Operation:
    """An operation of the API a tool makes; ``body_as`` names the argument that holds
    its whole body (a workflow), else the body's own fields are arguments."""

    method: str
    path: str
    body_as: str | None = None
    leave_out: frozenset[str] = frozenset()  # parameters a tool does not offer


@dataclass(frozen=True)
class Place:
    where: Where
    name: str  # the name in the request: a header's, a query parameter's, a body field's


@dataclass(frozen=True)
class ApiRequest:
    path: str
    params: Json = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class ToolInput:
    """A tool's input schema, and where each argument goes in the operation's request."""

    operation: Operation
    schema: Json
    places: dict[str, Place]
    has_body: bool

    def request(self, arguments: Mapping[str, Any]) -> ApiRequest:
        """The request for ``arguments`` (already checked against ``schema``); an absent
        argument is left to the API's default."""
        path, params, headers = self.operation.path, {}, {}
        body: Json = {}
        whole: Any = None
        for name, value in arguments.items():
            place = self.places.get(name)
            if place is None:
                continue  # the tool's own options (wait, timeout)
            if place.where == "path":
                # Quoted whatever the schema's pattern says: a value never adds a segment.
                path = path.replace("{" + place.name + "}", quote(str(value), safe=""))
            elif place.where == "query":
                params[place.name] = value
            elif place.where == "header":
                headers[place.name] = str(value)
            elif place.where == "body":
                body[place.name] = value
            else:
                whole = value
        if not self.has_body:
            return ApiRequest(path, params, headers)
        return ApiRequest(path, params, headers, body if whole is None else whole)


def tool_input(document: Json, operation: Operation, extra: Mapping[str, Json]) -> ToolInput:
    """The input of a tool making ``operation``, with the tool's own ``extra`` arguments."""
    try:
        spec = document["paths"][operation.path][operation.method.lower()]
    except KeyError:
        raise NotInDocument(f"the gateway has no {operation.method} {operation.path}") from None
    found = _Arguments(f"{operation.method} {operation.path}")
    for parameter in spec.get("parameters", []):
        if parameter["name"] not in operation.leave_out:
            schema = dict(parameter.get("schema", {}))
            if "description" in parameter:
                schema.setdefault("description", parameter["description"])
            # "Idempotency-Key" is idempotency_key: an argument's name, not a header's.
            name = parameter["name"].lower().replace("-", "_")
            place = Place(parameter["in"], parameter["name"])
            found.add(name, schema, place, parameter.get("required", False))
    body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "schema" in body and operation.body_as is not None:
        found.add(operation.body_as, body["schema"], Place("whole-body", ""), True)
    elif "schema" in body:
        fields = _resolved(document, body["schema"])
        for name, schema in fields.get("properties", {}).items():
            found.add(name, schema, Place("body", name), name in fields.get("required", []))
    for name, schema in extra.items():
        found.add(name, schema, None, False)
    return ToolInput(operation, found.schema(document), found.places, "schema" in body)


class _Arguments:
    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.properties: Json = {}
        self.required: list[str] = []
        self.places: dict[str, Place] = {}

    def add(self, name: str, schema: Json, place: Place | None, required: bool) -> None:
        """``place`` None: the tool's own argument, which never reaches the API."""
        if name in self.properties:
            raise ValueError(f"{self.operation}: two arguments named {name}")
        self.properties[name] = schema
        if place is not None:
            self.places[name] = place
        if required:
            self.required.append(name)

    def schema(self, document: Json) -> Json:
        """An object of these arguments and no other, with the components they name."""
        schema = {"type": "object", "properties": self.properties, "additionalProperties": False}
        if self.required:
            schema["required"] = self.required
        if definitions := _definitions(document, self.properties):
            schema["$defs"] = definitions
        found: Json = _local_refs(schema)
        return found


def _resolved(document: Json, schema: Json) -> Json:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        found: Json = document["components"]["schemas"][ref.removeprefix(REF_PREFIX)]
        return found
    return schema


def _definitions(document: Json, schema: Any) -> Json:
    """Every component ``schema`` names, and those they name in turn."""
    found: Json = {}
    waiting = list(_refs(schema))
    while waiting:
        name = waiting.pop()
        if name not in found:
            found[name] = document["components"]["schemas"][name]
            waiting += _refs(found[name])
    return found


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        own = [ref.removeprefix(REF_PREFIX)] if isinstance(ref, str) else []
        return own + [name for value in schema.values() for name in _refs(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _refs(value)]
    return []


def _local_refs(schema: Any) -> Any:
    """A copy with the document's references made the schema's own (``#/$defs/...``)."""
    if isinstance(schema, dict):
        return {
            key: "#/$defs/" + value.removeprefix(REF_PREFIX)
            if key == "$ref" and isinstance(value, str)
            else _local_refs(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_local_refs(value) for value in schema]
    return copy.copy(schema)
