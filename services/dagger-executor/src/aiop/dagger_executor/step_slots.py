"""How many steps an executor runs at once, across all its workflows.

A step waits for a slot before it starts (a cache hit takes none): parallel branches of
many workflows cannot oversubscribe the machine. The heartbeat reports the capacity and
the load.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class StepSlots:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an executor runs at least one step at once, not {capacity}")
        self.capacity = capacity
        self.load = 0  # steps running now
        self._free = asyncio.Semaphore(capacity)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._free:
            self.load += 1
            try:
                yield
            finally:
                self.load -= 1
