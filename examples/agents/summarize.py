"""Extractive summaries: the sentences that carry a text's most frequent words, kept in
the order the text has them. No model, no network: word counts and a stopword list.

A sentence's score is the sum of its content words' frequencies (each relative to the
most frequent word), divided by the square root of how many it has: a plain sum would
always pick the longest sentences, a mean the shortest ones.
"""

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

# Called as (percent, message, partial result so far).
Progress = Callable[[float, str, dict[str, Any]], object]

# Common English words that say nothing about what a text is about.
_STOPWORDS = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is
it its itself just me may might more most must my myself no nor not now of off on once one
only or other our ours ourselves out over own same shall she should so some such than that
the their theirs them themselves then there these they this those through to too two under
until up us very was we were what when where which while who whom why will with would you
your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS.split())

# Words ending in a dot that do not end a sentence.
ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "fig",
                           "st", "approx", "cf", "jr", "sr"})  # fmt: skip
# A blank line, or a line that starts a list item or a heading (Markdown).
_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*+#]|\d+[.)])\s)")
# . ! or ? (and any closing quote or bracket) before a space and a capital or a digit.
_END = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def sentences(text: str) -> list[str]:
    """The text's sentences, whitespace tidied: a paragraph or a list item ends one, and
    so does a full stop, unless it ends an abbreviation or an initial ("J. Smith")."""
    found: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for match in _END.finditer(paragraph):
            piece = paragraph[start : match.end()]
            last = piece.split()[-1].strip("\"')]([").rstrip(".").lower()
            if match.group().startswith(".") and (
                last in ABBREVIATIONS or (len(last) == 1 and last.isalpha())
            ):
                continue
            found.append(piece)
            start = match.end()
        found.append(paragraph[start:])
    return [" ".join(piece.split()) for piece in found if piece.strip()]


def content_words(sentence: str) -> list[str]:
    """The sentence's words, lower case, without stopwords and single letters."""
    return [w for w in _WORD.findall(sentence.lower()) if w not in STOPWORDS and len(w) > 1]


def summarize(text: str, count: int = 3, progress: Progress | None = None) -> dict[str, Any]:
    """The ``count`` best sentences of ``text`` in their original order, with their
    positions and the words that weighed most."""
    if count < 1:
        raise ValueError("a summary needs at least one sentence")
    report = progress or (lambda percent, message, partial: None)
    found = sentences(text)
    report(10, f"{len(found)} sentences", {})
    words = [content_words(s) for s in found]
    frequency = Counter(w for ws in words for w in ws)
    top = max(frequency.values(), default=1)
    scores: list[float] = []
    step = max(1, len(found) // 10)
    for i, ws in enumerate(words):
        weight = sum(frequency[w] / top for w in ws)
        scores.append(weight / math.sqrt(len(ws)) if ws else 0.0)
        if (i + 1) % step == 0:
            best = max(range(len(scores)), key=scores.__getitem__)
            report(10 + 80 * (i + 1) / len(found), f"scored {i + 1} of {len(found)}",
                   {"best_so_far": found[best]})  # fmt: skip
    # Highest score first; an earlier sentence wins a tie.
    ranked = sorted(range(len(found)), key=lambda i: (-scores[i], i))
    picked = sorted(ranked[:count])
    summary = [found[i] for i in picked]
    report(100, "done", {"sentences": summary})
    return {
        "summary": " ".join(summary),
        "sentences": summary,
        "positions": picked,
        "total_sentences": len(found),
        "keywords": [w for w, _ in frequency.most_common(5)],
    }
