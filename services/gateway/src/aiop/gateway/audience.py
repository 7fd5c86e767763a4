"""Who sees a message that is no route's own resource: a dead letter, an event in the
live tail (docs/security.md, "Dead letters and the live tail").

There are no roles: a token carries projects. A message of a workflow belongs to the
workflow's project; an external event to the project it names (``default`` when it names
none); anything else (junk on ``ext.>``, a payload no one can read) is a platform
message, shown to callers holding the ``default`` project, as the operator's key does.
"""

from typing import NamedTuple

import msgspec

from aiop.contracts.subjects import InvalidToken, check_token, workflow_id_of
from aiop.contracts.triggers import DEFAULT_PROJECT, EXT_EVENTS
from aiop.gateway.access import current_view
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway
from aiop.servicekit.cloudevents import NotACloudEvent, read_cloudevent

PLATFORM = DEFAULT_PROJECT  # who sees the platform's own messages


class Claim(NamedTuple):
    """What a message says of its owner, before anyone is asked."""

    workflow_id: str | None
    project: str | None  # named in the message itself


def sees(caller: Claims, project: str | None) -> bool:
    """Whether ``caller`` sees a message of ``project`` (None: the platform's)."""
    return (project if project is not None else PLATFORM) in caller.projects


def claim_of(subject: str, payload: bytes, headers: dict[str, str]) -> Claim:
    """The workflow (from the subject, else the payload) and the project (an external
    event's own, a submission's spec) a message names. An external system may write
    anything in its payload: only its CloudEvent's project counts, never a workflow id."""
    if subject.startswith(EXT_EVENTS.removesuffix(">")):
        try:
            return Claim(None, read_cloudevent(headers, payload).project)
        except NotACloudEvent:
            return Claim(None, None)
    try:
        data = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        data = None
    body = data if isinstance(data, dict) else {}
    spec = body.get("spec")
    return Claim(
        workflow_id_of(subject) or _token(body.get("workflow_id")),
        _token(spec.get("project")) if isinstance(spec, dict) else None,
    )


async def workflow_project(gw: Gateway, workflow_id: str) -> str | None:
    """The workflow's project, remembered; None if task-manager knows no such workflow.
    A Problem (502, 503) if task-manager cannot be asked."""
    if (known := gw.owners.project(workflow_id)) is not None:
        return known
    if gw.owners.recently_missing(workflow_id):
        return None
    view = await current_view(gw, workflow_id)
    if view is None:
        gw.owners.missing(workflow_id)
        return None
    gw.owners.learn(workflow_id, view.project)
    return view.project


async def owner_of(gw: Gateway, claim: Claim) -> str | None:
    """The project a message belongs to: its workflow's, else the one it names, else
    None (the platform's)."""
    if claim.workflow_id is not None:
        project = await workflow_project(gw, claim.workflow_id)
        if project is not None:
            return project
    return claim.project


def _token(value: object) -> str | None:
    try:
        return check_token(value, "name") if isinstance(value, str) else None
    except InvalidToken:
        return None
