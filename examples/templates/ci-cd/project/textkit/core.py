"""Word counts and URL slugs."""

import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"[a-z0-9']+")


def word_counts(text: str, top: int | None = None) -> list[tuple[str, int]]:
    """The words of ``text`` (case-folded) with how often each occurs, most frequent first;
    ties in alphabetical order. ``top`` keeps only the first ``top`` of them."""
    counts = Counter(_WORD.findall(text.casefold()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked if top is None else ranked[:top]


def slugify(title: str, max_length: int = 60) -> str:
    """``title`` as a URL slug: ASCII letters and digits joined by single hyphens,
    at most ``max_length`` characters, never ending in a hyphen."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-")
