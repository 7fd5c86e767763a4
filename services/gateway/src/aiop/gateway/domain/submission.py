"""From request body bytes to a WorkflowSpec that can run, or every reason it cannot."""

import hashlib
import uuid
from typing import Any, get_args, get_origin

import msgspec

from aiop.contracts.workflow import WorkflowSpec, as_written, validate_spec

# Fixed forever: changing it would give a retried submit a new workflow id.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d2c1e-7a52-4b0e-9a51-3c0f1f4a9e10")


class MalformedBody(ValueError):
    """Not JSON at all."""


class FieldError(msgspec.Struct, frozen=True):
    pointer: str  # JSON pointer into the body (RFC 6901), "" for the body itself
    detail: str


class BadShape(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors


class CannotRun(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_spec(body: bytes) -> WorkflowSpec:
    """Raises MalformedBody, BadShape (every field error) or CannotRun (every spec problem)."""
    raw = as_written(decode_json(body))
    try:
        spec = msgspec.convert(raw, WorkflowSpec)
    except msgspec.ValidationError as exc:
        # msgspec stops at the first error; walk the body to report all of them at once.
        raise BadShape(shape_errors(raw, WorkflowSpec) or [FieldError("", str(exc))]) from exc
    problems = validate_spec(spec)
    if problems:
        raise CannotRun(problems)
    return spec


def decode_json(body: bytes) -> Any:
    """The JSON value in ``body``; MalformedBody for anything that is not JSON, including
    bytes that are not UTF-8 (the decoder raises UnicodeDecodeError for those) and nesting
    deeper than the decoder's recursion limit (it raises RecursionError, cleanly)."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedBody(str(exc)) from exc
    except RecursionError as exc:
        raise MalformedBody("nested too deeply") from exc


def shape_errors(value: Any, tp: Any, pointer: str = "") -> list[FieldError]:
    """Every place where ``value`` does not fit type ``tp`` (structs and lists walked)."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if not isinstance(value, dict):
            return [FieldError(pointer, "expected an object")]
        errors: list[FieldError] = []
        for field in msgspec.structs.fields(tp):
            where = f"{pointer}/{field.encode_name}"
            if field.encode_name in value:
                errors += shape_errors(value[field.encode_name], field.type, where)
            elif field.required:
                errors.append(FieldError(where, "field required"))
        return errors
    if get_origin(tp) is list and isinstance(value, list):
        (item,) = get_args(tp)
        return [e for i, v in enumerate(value) for e in shape_errors(v, item, f"{pointer}/{i}")]
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        return [FieldError(pointer, str(exc))]
    return []


def workflow_id_for(principal: str, idempotency_key: str | None) -> str:
    """The same principal and Idempotency-Key always name the same workflow."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal}\n{idempotency_key}").hex


def body_digest(spec: WorkflowSpec, template: str | None, parameters: dict[str, Any]) -> str:
    """What a submission asked for, as a digest: an Idempotency-Key used again with
    another body is refused rather than answered with the first body's workflow."""
    asked = msgspec.json.encode([spec, template, parameters], order="deterministic")
    return hashlib.sha256(asked).hexdigest()
