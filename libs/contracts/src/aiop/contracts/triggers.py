"""External events and the triggers that start workflows from them.

An external event is a CloudEvent 1.0. It reaches the bus on ``ext.<source>.<type>``
(stream AIOP_EXT), through ``POST /v1/events`` or published there directly, as the
CloudEvents structured JSON format; the project it belongs to is the extension attribute
``aiopproject`` (default "default").

A trigger is a stored rule of a project: an event type (exact, or a prefix ending in
``*``), optionally a source, a filter on the event's data, and a target to start. The
filter maps dotted paths into ``data`` to the value each must equal: ``{"ref":
"main", "repo.private": false}`` matches data ``{"ref": "main", "repo": {"private":
false}}``. The target is a template (``name`` or ``name@version``) or a task of the
project, with parameters (a task's go over its own), any string of which may hold ``${{ event.id }}``, ``${{ event.source }}``, ``${{ event.type
}}``, ``${{ event.subject }}``, ``${{ event.time }}`` or ``${{ event.data.<path> }}``; a
parameter that is exactly one placeholder takes the value as it is (a number stays a
number), else the value's text is put in the string.
"""

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec

from aiop.contracts.subjects import check_token

EXT = "ext"
EXT_EVENTS = "ext.>"  # every external event (stream AIOP_EXT)
PROJECT_EXTENSION = "aiopproject"  # CloudEvents extension names: lowercase letters, digits
DEFAULT_PROJECT = "default"
MAX_LIMIT = 200  # events in one page

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")
_TEMPLATE_REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}(@[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$")
# ${{ event.id }}, ${{ event.data.repo.name }}: the event's part a parameter takes.
PLACEHOLDER = re.compile(r"\$\{\{\s*event\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")
ATTRIBUTES = ("id", "source", "type", "subject", "time")

# What read_cloudevent checks, said in the API's schema too.
Text = Annotated[str, msgspec.Meta(min_length=1)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An external event as the bus carries it: the CloudEvents JSON format, with the
    attributes a trigger reads (other extension attributes are not kept)."""

    specversion: Annotated[str, msgspec.Meta(pattern=r"^1\.0$")]  # no other version is taken
    id: Text
    source: Text
    type: Text
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    aiopproject: Name | None = None  # the project it belongs to; None: "default"

    @property
    def project(self) -> str:
        return self.aiopproject or DEFAULT_PROJECT


def subject_token(value: str) -> str:
    """``value`` as one subject token: itself when it is one, else a readable form
    (every run of other characters as ``-``) and a short hash of the whole, so that two
    values that read alike stay apart (``github.com/org`` -> ``github-com-org-3f2a9c1b``)."""
    if re.fullmatch(r"[A-Za-z0-9_\-]{1,128}", value):
        return value
    readable = _UNSAFE.sub("-", value).strip("-")[:100] or "x"
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def ext_subject(source: str, event_type: str) -> str:
    return f"{EXT}.{subject_token(source)}.{subject_token(event_type)}"


def ext_msg_id(project: str, source: str, event_id: str) -> str:
    """The ``Nats-Msg-Id`` of an external event: a CloudEvent is identified by source
    and id, so JetStream drops the same event published again within its window. The
    project is part of it: no caller can make another project's event look repeated."""
    key = f"{project}\n{source}\n{event_id}"
    return "ext-" + hashlib.sha256(key.encode()).hexdigest()[:40]


class TriggerTarget(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a trigger starts: a template or a task of its project (exactly one), with
    parameters."""

    template: str | None = None  # "name" (the highest version when it fires) or "name@version"
    task: str | None = None  # a task of the trigger's project; parameters go over its own
    parameters: dict[str, Any] = {}  # values may hold ${{ event.... }} placeholders


class Trigger(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    event_type: str  # exact, or a prefix ending in "*" ("com.github.*")
    target: TriggerTarget
    project: str = DEFAULT_PROJECT
    source: str | None = None  # None: any source
    filter: dict[str, Any] = {}  # dotted path into data -> the value it must equal
    enabled: bool = True
    description: str = ""
    created_by: str | None = None  # the principal that saved it; its runs are submitted as it
    created_at: datetime | None = None
    updated_at: datetime | None = None


def check_trigger(trigger: Trigger) -> list[str]:
    """What is wrong with ``trigger``, in words; [] if nothing."""
    problems = []
    try:
        check_token(trigger.name, "name")
    except ValueError as exc:
        problems.append(str(exc))
    kind = trigger.event_type
    if not kind or "*" in kind[:-1]:
        problems.append("event_type must be a type, or a prefix ending in '*' ('*': any)")
    if trigger.source == "":
        problems.append("source must not be empty (leave it out to take any source)")
    for path in trigger.filter:
        if not path or any(not part for part in path.split(".")):
            problems.append(f"filter path {path!r} must be dotted names, e.g. repo.name")
    problems += _target_problems(trigger.target)
    for found in placeholders(trigger.target.parameters):
        head = found.split(".")[0]
        if head not in ATTRIBUTES and head != "data":
            problems.append(f"${{{{ event.{found} }}}}: an event has {', '.join(ATTRIBUTES)} "
                            "and data")  # fmt: skip
        elif head in ATTRIBUTES and found != head:
            problems.append(f"${{{{ event.{found} }}}}: {head} has no parts")
    return problems


def _target_problems(target: TriggerTarget) -> list[str]:
    """What is wrong with what a trigger starts: it names a template or a task, exactly
    one, and that name is well formed."""
    if (target.template is None) == (target.task is None):
        return ["the target is a template or a task: give exactly one of them"]
    if target.template is not None and not _TEMPLATE_REF.match(target.template):
        return [f"target template {target.template!r} must be name or name@version"]
    if target.task is not None:
        try:
            check_token(target.task, "target task")
        except ValueError as exc:
            return [str(exc)]
    return []


def placeholders(value: Any) -> list[str]:
    """Every ``event.<what>`` named in ``value`` (strings, lists and mappings within)."""
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [p for v in value.values() for p in placeholders(v)]
    if isinstance(value, list):
        return [p for v in value for p in placeholders(v)]
    return []


class TriggerRef(msgspec.Struct, frozen=True, kw_only=True):
    """One trigger of a project (``aiop.triggers.get.v1``, ``aiop.triggers.delete.v1``)."""

    project: str
    name: str


class TriggersQuery(msgspec.Struct, frozen=True, kw_only=True):
    project: str


class TriggerList(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    triggers: list[Trigger]


class TriggerSaved(msgspec.Struct, frozen=True, kw_only=True):
    trigger: Trigger
    created: bool  # False: it replaced a trigger of the same name


class TriggerRun(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one matching trigger did with an event: the workflow it started, or why not."""

    trigger: str
    workflow_id: str | None = None
    reason: str | None = None  # the template could not render, the project is archived, say


class EventRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An external event as task-manager recorded it, with what it started."""

    project: str
    source: str
    id: str
    type: str
    received_at: datetime
    subject: str | None = None
    time: datetime | None = None
    data: Any = None
    runs: list[TriggerRun] = []  # [] when no trigger matched: kept all the same


class EventsQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Recorded events of a project, newest first (``aiop.events.list.v1``)."""

    project: str
    type: str | None = None  # exact, or a prefix ending in "*"
    matched: bool | None = None  # True: some trigger matched; False: none did
    limit: int = 50
    cursor: str | None = None  # the previous page's next_cursor


class EventPage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    project: str
    events: list[EventRecord]
    next_cursor: str | None = None  # None: this is the last page


def type_matches(pattern: str, event_type: str) -> bool:
    """``pattern`` (exact, or a prefix ending in ``*``) matches ``event_type``."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


class EventSent(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's answer to ``POST /v1/events``."""

    id: str
    source: str
    type: str
    project: str
    subject: str  # where it was published
