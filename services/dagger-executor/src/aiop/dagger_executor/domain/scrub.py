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
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self._forms))) if forms else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def stream(self) -> "StreamScrubber":
        """A scrubber for one stream written in pieces (``StreamScrubber``)."""
        return StreamScrubber(self._pattern, self._forms)


# Past this many characters held back, the end of a stream is not searched for the start
# of a secret (quadratic in the worst case): the whole length is held back instead.
PRECISE_HOLDBACK = 4096


class StreamScrubber:
    """Scrubs one stream written in pieces, as if it were one text: a value split across
    writes (half of it, a flush, the other half) is masked whole.

    ``feed`` returns what can be let out now and holds back the end of the stream that
    could be the start of a secret's form (at most the longest form less one character)
    until the next ``feed`` or ``end``. Without secrets nothing is held back."""

    def __init__(self, pattern: re.Pattern[str] | None, forms: list[str]) -> None:
        self._pattern = pattern
        self._forms = forms
        self._holdback = max((len(f) for f in forms), default=1) - 1
        self._starts = {f[0] for f in forms}
        self._pending = ""

    def feed(self, text: str) -> str:
        if self._pattern is None:
            return text
        text = self._pending + text
        hold = self._held_from(text)
        out: list[str] = []
        done = 0
        # A form starting before ``hold`` is wholly in ``text`` or cannot match there at
        # all, whatever comes next: masking it now is what masking the whole stream does.
        for match in self._pattern.finditer(text):
            if match.start() >= hold:
                break
            out += (text[done : match.start()], MASK)
            done = match.end()
        cut = max(hold, done)
        out.append(text[done:cut])
        self._pending = text[cut:]
        return "".join(out)

    def end(self) -> str:
        """The rest of the stream, scrubbed: nothing more is coming."""
        rest, self._pending = self._pending, ""
        return self._pattern.sub(MASK, rest) if self._pattern is not None and rest else rest

    def _held_from(self, text: str) -> int:
        """Where the part of ``text`` that may begin a form, continued later, starts."""
        first = max(0, len(text) - self._holdback)
        if self._holdback > PRECISE_HOLDBACK:
            return first
        for at in range(first, len(text)):
            if text[at] in self._starts:
                tail = text[at:]
                if any(form.startswith(tail) for form in self._forms):
                    return at
        return len(text)
