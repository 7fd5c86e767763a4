"""Reading a CloudEvent 1.0 from HTTP or NATS with the CloudEvents SDK, and writing the
form AIOP carries on ``ext.<source>.<type>`` (aiop.contracts.triggers).

Both transports use the same binding rules: attributes in ``ce-*`` headers and the data
as the body (binary mode), or the whole event as JSON in the body (structured mode). So
the gateway reads a request and task-manager reads a message with the same function,
whether the message came through the gateway or from a system publishing on NATS itself.
"""

import json
from collections.abc import Mapping
from typing import Any

import msgspec
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from aiop.contracts.subjects import InvalidToken, check_token
from aiop.contracts.triggers import PROJECT_EXTENSION, CloudEvent

_FORMAT = JSONFormat()
_encode = msgspec.json.Encoder().encode


class NotACloudEvent(ValueError):
    """Headers and body that hold no CloudEvent 1.0 AIOP can take; says why."""


class Unreadable(NotACloudEvent):
    """A structured-mode body that is not JSON at all."""


def read_cloudevent(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """The CloudEvent in ``headers`` and ``body``, with its ``aiopproject`` attribute if
    it has one; NotACloudEvent says why there is none."""
    try:
        # The SDK raises its own errors for missing attributes, and plain ones (KeyError,
        # AttributeError, JSONDecodeError) for a body of the wrong shape: all mean "not one".
        event = from_http(HTTPMessage(dict(headers), body), _FORMAT)
        attributes = event.get_attributes()
        data = event.get_data()
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not a CloudEvent: the body is not JSON ({exc.msg})") from None
    except Exception as exc:
        raise NotACloudEvent(f"not a CloudEvent: {_reason(exc)}") from None
    if attributes.get("specversion") != "1.0":
        raise NotACloudEvent(f"specversion {attributes.get('specversion')!r}: only 1.0 is taken")
    project = attributes.get(PROJECT_EXTENSION)
    try:
        if project is not None:
            check_token(str(project), PROJECT_EXTENSION)
    except InvalidToken as exc:
        raise NotACloudEvent(str(exc)) from None
    time = attributes.get("time")
    return CloudEvent(
        specversion="1.0",
        id=str(attributes["id"]),
        source=str(attributes["source"]),
        type=str(attributes["type"]),
        subject=_text(attributes.get("subject")),
        # The SDK stamps "now" on an event without a time; the record says when it came.
        time=time if "time" in _given(headers, body) else None,
        datacontenttype=_text(attributes.get("datacontenttype")),
        dataschema=_text(attributes.get("dataschema")),
        data=_json_data(data),
        aiopproject=None if project is None else str(project),
    )


def structured(event: CloudEvent) -> bytes:
    """``event`` in the CloudEvents JSON format (``application/cloudevents+json``)."""
    return _encode(event)


def _json_data(data: Any) -> Any:
    """The data as JSON values: bytes (data_base64, a binary body) as text if it is JSON
    or UTF-8, which is what a trigger's filter and parameters can read."""
    if not isinstance(data, bytes | bytearray):
        return data
    try:
        return json.loads(data)
    except ValueError:
        pass
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise NotACloudEvent("data must be JSON or UTF-8 text") from None


def _given(headers: Mapping[str, str], body: bytes) -> set[str]:
    """The attribute names the sender gave (not those the SDK filled in)."""
    names = {k.lower()[3:] for k in headers if k.lower().startswith("ce-")}
    if names:
        return names
    try:
        document = json.loads(body)
    except ValueError:
        return set()
    return set(document) if isinstance(document, dict) else set()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _reason(exc: Exception) -> str:
    if isinstance(exc, AttributeError | TypeError | KeyError):
        return "the body must be a JSON object with specversion, id, source and type"
    return str(exc).replace("Failed to create CloudEvent due to the validation errors:: ", "")
