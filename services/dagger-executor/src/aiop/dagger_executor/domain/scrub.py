"""Replacing secret values in everything that leaves the executor.

Exact matching alone misses encodings (docs/delivery.md, "Secrets in output"): a step that prints
``base64(secret)`` or ``hex(secret)`` would leak it. So each value is scrubbed together
with its base64 (standard and URL-safe, with and without padding) and hex forms.
"""

import base64
import re
from collections.abc import Iterable

MASK = "***"


def encodings(value: str) -> set[str]:
    """The forms of ``value`` that are scrubbed."""
    raw = value.encode()
    forms = {value, raw.hex(), raw.hex().upper()}
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.add(b64)
        forms.add(b64.rstrip("="))
    return {form for form in forms if form}


class Scrubber:
    """Masks every form of the given secret values; a no-op when there are none."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = set().union(*(encodings(v) for v in secrets if v)) if secrets else set()
        # Longest first, so a value that contains another is masked whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)
