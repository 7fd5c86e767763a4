"""A template's parameter form, generated from its JSON Schema, and the form's answer
turned back into parameters by the same schema.

Pure: no requests, no rendering. The browser's own checks (required, min, max) are a
convenience; the API validates the parameters again, and its refusals are shown next to
the field they name (``api_errors``).
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "param."  # a form field ``param.<property>`` is the parameter ``<property>``
KINDS = ("text", "select", "number", "checkbox", "json")


@dataclass(frozen=True)
class Field:
    """One input of the form, as the template draws it."""

    name: str  # the property
    kind: str  # one of KINDS
    label: str
    help: str = ""
    required: bool = False
    value: str = ""  # what the input holds: the default, or what was sent
    checked: bool = False
    options: tuple[str, ...] = ()
    minimum: str | None = None
    maximum: str | None = None
    step: str | None = None  # "1" for an integer, "any" for a number
    type: str = "string"  # the JSON type the value is converted to
    error: str | None = None

    @property
    def input_name(self) -> str:
        return PREFIX + self.name


def json_type(prop: Mapping[str, Any]) -> str:
    """The property's JSON type; a nullable one (``["string", "null"]``) is its other
    type, an enum without a type is a string, anything else unknown is taken as JSON."""
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "enum" in prop:
        return "string"
    return kind if isinstance(kind, str) else "json"


def properties(schema: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    props = (schema or {}).get("properties") or {}
    return {str(k): v for k, v in props.items() if isinstance(v, Mapping)}


def fields(
    schema: Mapping[str, Any] | None,
    sent: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[Field]:
    """The form's fields in the schema's order: defaults filled in, or, when the form
    is drawn again after a refusal, what was ``sent`` (field name -> value)."""
    required = set((schema or {}).get("required") or [])
    errors = errors or {}
    out = []
    for name, prop in properties(schema).items():
        field_name = PREFIX + name
        kind = json_type(prop)
        common: dict[str, Any] = {
            "name": name, "label": str(prop.get("title") or name),
            "help": str(prop.get("description") or ""), "required": name in required,
            "type": kind, "error": errors.get(name),
        }  # fmt: skip
        default = prop.get("default")
        if kind == "boolean":
            checked = field_name in sent if sent is not None else default is True
            out.append(Field(kind="checkbox", checked=checked, **common))
            continue
        value = sent.get(field_name, "") if sent is not None else _shown(default, kind)
        if "enum" in prop and kind in ("string", "integer", "number"):
            options = tuple(_shown(o, kind) for o in prop["enum"])
            out.append(Field(kind="select", value=value, options=options, **common))
        elif kind in ("integer", "number"):
            out.append(Field(
                kind="number", value=value if _numeric(value) else "", step="1" if kind == "integer" else "any",
                minimum=_bound(prop.get("minimum")), maximum=_bound(prop.get("maximum")),
                **common,
            ))  # fmt: skip
        elif kind == "string":
            out.append(Field(kind="text", value=value, **common))
        else:
            out.append(Field(kind="json", value=value, **common))
    return out


def _shown(value: Any, kind: str) -> str:
    """A value as its input holds it."""
    if value is None:
        return ""
    if kind in ("string", "integer", "number") and not isinstance(value, (dict, list, bool)):
        return str(value)
    return json.dumps(value, indent=2)


def _numeric(text: str) -> bool:
    """Whether a number input can hold ``text`` (it shows nothing of anything else)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return text == ""


def _bound(value: Any) -> str | None:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse(
    schema: Mapping[str, Any] | None, form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the parameters, an error per property). A field left empty is left out, so
    the template's default applies, unless it is required."""
    required = set((schema or {}).get("required") or [])
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, prop in properties(schema).items():
        kind = json_type(prop)
        raw = form.get(PREFIX + name)
        if kind == "boolean":
            params[name] = raw is not None  # an unticked box is not sent at all
            continue
        text = (raw or "").strip() if kind != "string" else (raw or "")
        if text == "":
            if name in required:
                errors[name] = "required"
            continue
        try:
            params[name] = convert(text, kind, prop)
        except ValueError as exc:
            errors[name] = str(exc)
    return params, errors


def convert(text: str, kind: str, prop: Mapping[str, Any]) -> Any:
    """One field's text as the property's type; ValueError says what is wrong."""
    if kind in ("integer", "number"):
        return _in_bounds(_number(text, kind), prop)
    if kind == "string":
        return _in_bounds(text, prop)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    wanted = {"array": list, "object": dict}.get(kind)
    if wanted is not None and not isinstance(value, wanted):
        raise ValueError(f"must be a JSON {kind}")
    return value


def _number(text: str, kind: str) -> int | float:
    """An integer, or a number: whole when written whole (``2``, not ``2.0``)."""
    try:
        return int(text)
    except ValueError:
        if kind == "integer":
            raise ValueError(f"not a whole number: {text!r}") from None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _in_bounds(value: Any, prop: Mapping[str, Any]) -> Any:
    if "enum" in prop and value not in prop["enum"]:
        raise ValueError(f"must be one of {', '.join(map(str, prop['enum']))}")
    if isinstance(value, str):
        return value
    if isinstance(prop.get("minimum"), (int, float)) and value < prop["minimum"]:
        raise ValueError(f"must be at least {prop['minimum']}")
    if isinstance(prop.get("maximum"), (int, float)) and value > prop["maximum"]:
        raise ValueError(f"must be at most {prop['maximum']}")
    return value


def api_errors(errors: list[Any]) -> dict[str, str]:
    """The API's refusals of the parameters (``{"pointer": "/parameters/<name>",
    "detail"}``) by property; the rest are the form's as a whole, under ""."""
    out: dict[str, str] = {}
    for error in errors:
        if not isinstance(error, Mapping):
            out[""] = "; ".join(filter(None, [out.get(""), str(error)]))
            continue
        pointer = str(error.get("pointer") or "")
        where = pointer.removeprefix("/parameters").strip("/").split("/")[0]
        detail = str(error.get("detail") or "invalid")
        out[where] = "; ".join(filter(None, [out.get(where), detail]))
    return out
