"""One step's output on its way out: scrubbed, batched into StepOutputAppended, tail kept.

Batching keeps a chatty step from publishing an event per line; the periodic flush keeps
a quiet one from holding its last lines back until it ends. Each stream is scrubbed as it
is written, as one text (``StreamScrubber``): a secret split across writes, with a flush
between them, is still masked whole, because the end of a stream that could begin a
secret is held back until the next write or the end. Only scrubbed text is buffered,
published or kept in the tail; a step without secrets has nothing held back.
"""

import asyncio
from collections.abc import Awaitable, Callable

from aiop.contracts import Event, StepOutputAppended
from aiop.dagger_executor.domain.output import OutputTail
from aiop.dagger_executor.domain.scrub import Scrubber
from aiop.servicekit.tasks import cancel_and_wait

FLUSH_INTERVAL = 0.2
MAX_CHUNK = 16 * 1024


class StepOutput:
    def __init__(
        self,
        publish: Callable[[Event], Awaitable[None]],
        *,
        workflow_id: str,
        step: str,
        attempt: int,
        scrub: Scrubber,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._publish = publish
        self._workflow_id, self._step, self._attempt = workflow_id, step, attempt
        self._scrub = scrub
        self._streams = {"stdout": scrub.stream(), "stderr": scrub.stream()}
        self._tail = OutputTail()
        self._buffers: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._sizes = {"stdout": 0, "stderr": 0}
        self._seq = 0
        self._try = 1
        self._lock = asyncio.Lock()  # one flush at a time keeps seq in publish order
        self._flusher = asyncio.create_task(self._flush_periodically(flush_interval))

    async def write(self, stream: str, text: str) -> None:
        self._keep(stream, self._streams[stream].feed(text))
        if self._sizes[stream] >= MAX_CHUNK:
            await self._flush(stream)

    def _keep(self, stream: str, scrubbed: str) -> None:
        if scrubbed:
            self._tail.append(scrubbed)
            self._buffers[stream].append(scrubbed)
            self._sizes[stream] += len(scrubbed)

    def scrub(self, text: str) -> str:
        return self._scrub(text)

    def tail(self) -> str:
        return self._tail.text()  # of scrubbed text: its cut never uncovers part of a value

    async def next_try(self, try_number: int) -> None:
        """What is written from now on belongs to try ``try_number``, with a tail of its own."""
        for stream in self._buffers:
            self._keep(stream, self._streams[stream].end())  # the try's processes are gone
            await self._flush(stream)
        self._try = try_number
        self._tail = OutputTail()

    async def close(self) -> None:
        await cancel_and_wait([self._flusher])
        for stream in self._buffers:
            self._keep(stream, self._streams[stream].end())
            await self._flush(stream)

    async def _flush_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for stream in self._buffers:
                await self._flush(stream)

    async def _flush(self, stream: str) -> None:
        async with self._lock:
            if not self._buffers[stream]:
                return
            text = "".join(self._buffers[stream])  # scrubbed as written
            self._buffers[stream].clear()
            self._sizes[stream] = 0
            self._seq += 1
            event = StepOutputAppended(
                workflow_id=self._workflow_id,
                step=self._step,
                attempt=self._attempt,
                stream=stream,
                seq=self._seq,
                text=text,
                try_number=self._try,
            )
            await self._publish(event)
