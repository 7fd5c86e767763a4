"""The tail of a step's output that travels in StepFailed: the last lines, capped in bytes."""

from collections import deque

TAIL_LINES = 40
TAIL_BYTES = 4096


class OutputTail:
    """Keeps the last ``max_lines`` lines of everything appended (stdout and stderr mixed)."""

    def __init__(self, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._partial = ""  # text after the last newline, completed by the next append

    def append(self, text: str) -> None:
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        self._lines.extend(pieces)

    def text(self) -> str:
        lines = list(self._lines)
        if self._partial:
            lines.append(self._partial)
        return last_bytes("\n".join(lines[-self.max_lines :]), self.max_bytes)


def last_bytes(text: str, limit: int) -> str:
    """The end of ``text`` within ``limit`` UTF-8 bytes, never cutting a character in half."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[-limit:].decode(errors="ignore")
