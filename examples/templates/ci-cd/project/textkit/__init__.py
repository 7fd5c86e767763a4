"""textkit: small text helpers (the sample project of the ci-cd template)."""

from textkit.core import slugify, word_counts

__all__ = ["slugify", "word_counts"]
__version__ = "0.1.0"
