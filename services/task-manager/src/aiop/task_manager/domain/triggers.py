"""Whether a trigger takes an event, and the parameters it starts its target with
(the rules are in aiop.contracts.triggers). Pure: no I/O."""

import json
from typing import Any

from aiop.contracts.triggers import PLACEHOLDER, CloudEvent, Trigger, type_matches

_MISSING = object()


def matches(trigger: Trigger, event: CloudEvent) -> bool:
    """The trigger is on, and the event has its type, its source (if it names one) and,
    at every path of its filter, the value the filter wants."""
    if not trigger.enabled or not type_matches(trigger.event_type, event.type):
        return False
    if trigger.source is not None and trigger.source != event.source:
        return False
    return all(_equal(lookup(event.data, path), wanted) for path, wanted in trigger.filter.items())


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (a list index is a number); a missing
    part gives a value no filter equals."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _equal(found: Any, wanted: Any) -> bool:
    if found is _MISSING:
        return False
    if isinstance(found, bool) or isinstance(wanted, bool):  # True == 1 in Python, not here
        return type(found) is type(wanted) and found == wanted
    return bool(found == wanted)


class MissingPart(ValueError):
    """A parameter names a part of the event the event does not have."""


def parameters_for(trigger: Trigger, event: CloudEvent) -> dict[str, Any]:
    """The target's parameters with every ``${{ event.... }}`` filled from ``event``."""
    return {name: _filled(value, event) for name, value in trigger.target.parameters.items()}


def _filled(value: Any, event: CloudEvent) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole is not None:  # alone: the value as it is, a number stays a number
            return _part(event, whole.group(1))
        return PLACEHOLDER.sub(lambda m: _text(_part(event, m.group(1))), value)
    if isinstance(value, dict):
        return {k: _filled(v, event) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, event) for v in value]
    return value


def _part(event: CloudEvent, what: str) -> Any:
    head, _, rest = what.partition(".")
    if head == "data":
        found = lookup(event.data, rest) if rest else event.data
    elif head == "time":
        found = event.time.isoformat() if event.time is not None else _MISSING
    elif head in ("id", "source", "type", "subject"):
        found = getattr(event, head)
        found = _MISSING if found is None else found
    else:
        found = _MISSING
    if found is _MISSING:
        raise MissingPart(f"the event has no {what}")
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
