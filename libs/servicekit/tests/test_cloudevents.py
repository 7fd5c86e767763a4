"""CloudEvents read from HTTP requests and NATS messages alike."""

import json

import pytest

from aiop.servicekit.cloudevents import NotACloudEvent, read_cloudevent, structured

BINARY = {
    "ce-specversion": "1.0", "ce-id": "42", "ce-source": "github.com/org/repo",
    "ce-type": "com.github.push", "ce-subject": "main", "ce-aiopproject": "team-a",
    "content-type": "application/json",
}  # fmt: skip


def test_binary_mode() -> None:
    event = read_cloudevent({**BINARY, "Nats-Msg-Id": "x"}, b'{"ref": "main"}')
    assert (event.id, event.source, event.type, event.subject) == (
        "42", "github.com/org/repo", "com.github.push", "main",
    )  # fmt: skip
    assert event.data == {"ref": "main"}
    assert event.project == "team-a"
    assert event.time is None  # the SDK's "now" is not taken for the sender's time


def test_structured_mode_and_back() -> None:
    document = {"specversion": "1.0", "id": "1", "source": "s", "type": "t",
                "time": "2026-01-02T03:04:05Z", "data": {"n": 1}}  # fmt: skip
    event = read_cloudevent({"content-type": "application/cloudevents+json"},
                            json.dumps(document).encode())  # fmt: skip
    assert event.project == "default"
    assert event.aiopproject is None
    assert event.time is not None
    assert event.time.year == 2026
    again = read_cloudevent({}, structured(event))
    assert again == event


def test_data_base64_and_text_data() -> None:
    document = {"specversion": "1.0", "id": "1", "source": "s", "type": "t",
                "data_base64": "eyJuIjogMn0="}  # {"n": 2}  # fmt: skip
    assert read_cloudevent({}, json.dumps(document).encode()).data == {"n": 2}
    text = read_cloudevent({**BINARY, "content-type": "text/plain"}, b"hello")
    assert text.data == "hello"


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, b"not json", "not JSON"),
        ({}, b"[1, 2]", "JSON object"),
        ({}, b'{"specversion": "1.0", "id": "1", "source": "s"}', "type"),
        ({}, b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}', "only 1.0"),
        ({**BINARY, "ce-aiopproject": "a.b"}, b"{}", "aiopproject"),
        ({**BINARY, "ce-time": "yesterday"}, b"{}", "not a CloudEvent"),
        ({**BINARY, "content-type": "application/octet-stream"}, b"\xff\xfe", "UTF-8"),
    ],
)
def test_what_is_not_one_says_why(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(NotACloudEvent, match=reason):
        read_cloudevent(headers, body)
