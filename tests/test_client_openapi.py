"""The client against the gateway's own OpenAPI document, made from its app (no bus):
every operation the gateway serves is wrapped by a client method, and each typed answer
(``aiop.client.types``) has the keys of the schema it is documented with, required as
the gateway's structs encode them."""

import importlib
import inspect
import re
import types
from collections.abc import Iterator
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import msgspec
import pytest

from aiop.client import types as answers
from aiop.client._api import Api, endpoint
from aiop.contracts import states
from aiop.gateway.app import create_app
from aiop.gateway.context import Gateway
from aiop.gateway.main import GatewaySettings
from aiop.servicekit import Service

DOC = create_app(Gateway(Service("gateway", GatewaySettings()), 1024)).openapi()
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
# Where the structs the gateway encodes its answers from live; the gateway's own first
# (its step cache's Pruned is the answer, task-manager's of the same name is not).
STRUCT_MODULES = [
    "aiop.gateway.adapters.logs", "aiop.gateway.adapters.step_cache",
    "aiop.gateway.adapters.workflow_events", "aiop.gateway.adapters.dead_letters",
    "aiop.gateway.adapters.event_tail", "aiop.contracts.queries",
    "aiop.contracts.projects", "aiop.contracts.schedules", "aiop.contracts.secrets",
    "aiop.contracts.templates", "aiop.contracts.triggers", "aiop.contracts.events",
    "aiop.gateway.domain.agents", "aiop.gateway.domain.fleet", "aiop.gateway.adapters.traces",
    "aiop.contracts.stats", "aiop.contracts.webhooks",
]  # fmt: skip
# What an agent does under its own registration (its token, work and leases) is taken by
# the agent SDK (aiop.client.agent) with the agent's token, not by this client.
AGENT_OWN = re.compile(r"/v1/agents/\{agent_id\}/.+")
# Keys the gateway adds to a documented schema: a task's answer carries its latest runs.
BEYOND_SCHEMA = {"TaskDetail": {"runs"}}
SAMPLES: dict[Any, Any] = {str: "x", float: 1.0, int: 1, bytes: b"", bool: False}


def endpoints() -> Iterator[tuple[str, endpoint[Any, Any]]]:
    for name, value in vars(Api).items():
        if isinstance(value, endpoint) and name != "request":  # any path: not one operation
            yield name, value


def built(ep: endpoint[Any, Any]) -> Any:
    """The Call the method builds, its required arguments made up from their types."""
    hints = get_type_hints(ep.build)
    args = []
    for name, param in list(inspect.signature(ep.build).parameters.items())[1:]:
        positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
        if positional and param.default is param.empty:
            args.append(SAMPLES.get(hints[name], {}))  # anything else is a JSON object
    return ep.build(Api("http://gateway.test"), *args)


def operation_of(method: str, path: str) -> tuple[str, str]:
    found = [
        (method, template)
        for template, operations in DOC["paths"].items()
        if method.lower() in operations
        and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
    ]
    assert len(found) == 1, f"{method} {path} is no operation of the gateway, or many: {found}"
    return found[0]


def test_every_operation_the_gateway_serves_is_wrapped() -> None:
    served = {
        (m.upper(), p) for p, ops in DOC["paths"].items() for m in ops if not AGENT_OWN.match(p)
    }
    wrapped = {operation_of(c.method, c.path) for c in (built(ep) for _, ep in endpoints())}
    assert served - {(m.upper(), p) for m, p in wrapped} == set()


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema's properties and required keys, through $ref, allOf and nullable anyOf."""
    if "$ref" in schema:
        return resolve(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        (inner,) = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return resolve(inner)
    if "allOf" in schema:
        parts = [resolve(s) for s in schema["allOf"]]
        return {
            "properties": {k: v for p in parts for k, v in p.get("properties", {}).items()},
            "required": [k for p in parts for k in p.get("required", [])],
        }
    return schema


def unwrapped(hint: Any) -> Any:
    """``X`` of ``X | None`` and ``NotRequired[X]``."""
    if get_origin(hint) is NotRequired:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in get_args(hint) if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    return hint


def same_keys(td: Any, schema: dict[str, Any], where: str) -> None:
    """``td`` has the schema's keys, every key the schema requires, and so on down."""
    shape = resolve(schema)
    properties = shape.get("properties", {})
    keys = td.__required_keys__ | td.__optional_keys__
    assert keys == set(properties) | BEYOND_SCHEMA.get(td.__name__, set()), where
    assert set(shape.get("required", [])) <= td.__required_keys__, where
    for key, hint in get_type_hints(td).items():
        inner = unwrapped(hint)
        if key not in properties:
            continue
        if is_typeddict(inner):
            same_keys(inner, properties[key], f"{where}.{key}")
        elif get_origin(inner) is list and is_typeddict(get_args(inner)[0]):
            same_keys(get_args(inner)[0], resolve(properties[key])["items"], f"{where}.{key}[]")


def answer_schema(method: str, template: str) -> dict[str, Any]:
    responses = DOC["paths"][template][method.lower()]["responses"]
    (status,) = sorted(s for s in responses if s.startswith("2"))[:1]
    content = responses[status].get("content", {})  # none for a 204
    return dict(content["application/json"]["schema"]) if content else {}


@pytest.mark.parametrize("name", [name for name, _ in endpoints()])
def test_each_answer_is_typed_as_the_gateway_documents_it(name: str) -> None:
    ep = dict(endpoints())[name]
    c = built(ep)
    schema = answer_schema(*operation_of(c.method, c.path))
    (result,) = get_args(get_type_hints(ep.build)["return"])
    if get_origin(result) is tuple:  # (whether it was created, the thing)
        result = get_args(result)[1]
    if result is str:  # the id of the run it started
        assert resolve(schema)["properties"]["workflow_id"]["type"] == "string"
    elif get_origin(result) is list:  # the list inside the answer, its one array
        arrays = [s for s in resolve(schema)["properties"].values() if s.get("type") == "array"]
        (array,) = arrays
        same_keys(get_args(result)[0], array["items"], name)
    elif schema:  # GET /healthz documents no shape
        assert is_typeddict(result), f"{name} answers {result}: give it its aiop.client.types"
        same_keys(result, schema, name)


def struct_named(name: str) -> type[msgspec.Struct] | None:
    for module in STRUCT_MODULES:
        found = getattr(importlib.import_module(module), name, None)
        if isinstance(found, type) and issubclass(found, msgspec.Struct):
            return found
    return None


TYPED = [v for v in vars(answers).values() if is_typeddict(v)]


@pytest.mark.parametrize("td", TYPED, ids=lambda td: td.__name__)
def test_keys_are_required_as_the_struct_encodes_them(td: Any) -> None:
    """A struct with ``omit_defaults`` leaves out the fields holding their default: those
    keys are NotRequired; every other key is in every answer."""
    struct = struct_named(td.__name__)
    if struct is None:
        assert td.__name__ in {"WorkflowStatus", "TaskDetail", "Ended", "Health"}
        return
    fields = msgspec.structs.fields(struct)
    omits = struct.__struct_config__.omit_defaults
    always = {
        f.encode_name for f in fields
        if not omits or (f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT)
    }  # fmt: skip
    assert td.__required_keys__ | td.__optional_keys__ == {f.encode_name for f in fields}
    assert td.__required_keys__ == always


def test_states_are_the_platforms() -> None:
    assert answers.TERMINAL_STATES == states.TERMINAL_WORKFLOW_STATES
    assert get_args(answers.WorkflowState) == get_args(states.WorkflowState)
    assert get_args(answers.StepState) == get_args(states.StepState)
