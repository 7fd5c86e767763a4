"""How many live event tails (GET /v1/stream) each caller has open. A tail holds up to
one server-side consumer per stream it reads, so one caller must not open them without
end: past the limit a new tail is refused until one closes."""

from collections import Counter
from collections.abc import Callable

DEFAULT_MOST = 16


class TailSlots:
    def __init__(self, most: int = DEFAULT_MOST) -> None:
        self.most = most
        self._open: Counter[str] = Counter()

    def take(self, caller: str) -> Callable[[], None] | None:
        """A slot for ``caller``'s new tail and the call that gives it back (once, however
        often it is called); None when the caller has ``most`` open already."""
        if self._open[caller] >= self.most:
            return None
        self._open[caller] += 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            self._open[caller] -= 1
            if not self._open[caller]:
                del self._open[caller]

        return give_back

    def open(self, caller: str) -> int:
        return self._open[caller]
