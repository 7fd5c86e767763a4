"""A step's summary: the JSON object it writes to the file ``$AIOP_SUMMARY`` names.

It travels in StepCompleted (and StepCached, from the cache entry), so it is bounded in
size and scrubbed of secret values like the step's output. One that cannot be used is
ignored, not fatal: the step did its work.
"""

from collections.abc import Callable
from typing import Any

import msgspec

from aiop.dagger_executor.domain.scrub import MASK

SUMMARY_FILE = ".aiop-summary.json"  # in the step's work directory
MAX_SUMMARY_BYTES = 64 * 1024


class SummaryIgnored(ValueError):
    """Why a summary file is not used."""


def parse_summary(raw: bytes) -> dict[str, Any]:
    """The summary in ``raw`` (the file's content, read up to one byte past the limit)."""
    if len(raw) > MAX_SUMMARY_BYTES:
        raise SummaryIgnored(f"it is over {MAX_SUMMARY_BYTES // 1024} KiB")
    try:
        summary = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise SummaryIgnored(f"it is not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise SummaryIgnored(f"it is a JSON {_kind(summary)}, not an object")
    return summary


def scrub_summary(value: Any, scrub: Callable[[str], str]) -> Any:
    """``value`` with every secret masked in its keys and values. Scrubbed once decoded,
    not as text: a value with a quote or a backslash is escaped in JSON text, where its
    plain form would not be found."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(key): scrub_summary(item, scrub) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_summary(item, scrub) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    # A number whose digits hold a secret (a PIN, say) is masked as a string.
    text = msgspec.json.encode(value).decode()
    return value if scrub(text) == text else MASK


def _kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")
