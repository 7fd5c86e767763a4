"""The agents' work as this gateway pulls it: one durable consumer per project and
capability on stream AIOP_AGENT_WORK (contracts.agents), and the deliveries it has sent
here that no poll has taken yet.

A poll that finds nothing held sends a pull request of its own (as many messages as the
agent may take, expiring when the poll gives up) with a reply subject of its own under
the queue's inbox. Every delivery lands in the queue's one buffer, whichever request it
answers: a poll that ends early (another capability had work first, the client went
away) leaves its request standing at the server, and what that request brings later is
taken by the next poll instead of being lost. Status replies (no messages, request
expired) end the request they name.

A delivery held here for half the consumer's ack wait is dropped unseen: it is close to
being delivered again, under a new delivery count, and the old one must not become a
lease. Not lost either: JetStream delivers it again to the next pull.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from aiop.contracts.agents import STREAM_AGENT_WORK, work_durable, work_filter

log = logging.getLogger("aiop.gateway.agents")

NO_WAIT_LIMIT_S = 2.0  # a no-wait pull is answered at once; this bounds a lost answer
FRESH_FRACTION = 0.5  # of the ack wait: how long a held delivery may still be handed out
ENDS_REQUEST = {"404", "408", "409"}  # no messages, expired, refused (too many waiting)


class WorkQueue:
    """One project's work for one capability, as this gateway pulls it."""

    def __init__(self, nc: Client, project: str, capability: str, ack_wait_s: float) -> None:
        self.nc = nc
        self.project = project
        self.capability = capability
        self.durable = work_durable(project, capability)
        self.ack_wait_s = ack_wait_s
        self.broken = False  # the consumer is gone: open the queue again
        self._inbox = nc.new_inbox()
        self._held: deque[tuple[float, Msg]] = deque()  # (arrived, delivery)
        self._arrivals: set[asyncio.Future[None]] = set()  # polls waiting for a delivery
        self._requests: dict[str, asyncio.Future[None]] = {}  # open pull requests
        self._tickets = itertools.count(1)
        self._sub: Subscription | None = None

    async def open(self, js: JetStreamContext) -> None:
        """Create (or update) the durable consumer and subscribe to the queue's inbox."""
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=work_filter(self.project, self.capability),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,  # the lease's life
            max_deliver=-1,  # a lease lost is offered again until the executor withdraws it
        )
        await js.add_consumer(STREAM_AGENT_WORK, config)
        self._sub = await self.nc.subscribe(f"{self._inbox}.*", cb=self._arrived)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._sub.unsubscribe()

    async def take(self, wanted: int, wait_s: float) -> list[Msg]:
        """Up to ``wanted`` deliveries: those held, or the first to come within
        ``wait_s``; none once the wait is over."""
        if taken := self._take_held(wanted):
            return taken
        loop = asyncio.get_running_loop()
        ticket = str(next(self._tickets))
        ended = self._requests[ticket] = loop.create_future()
        try:
            await self._pull(ticket, wanted, wait_s)
            deadline = loop.time() + (wait_s or NO_WAIT_LIMIT_S)
            while not (taken := self._take_held(wanted)):
                left = deadline - loop.time()
                if ended.done() or left <= 0:
                    return []
                arrival = loop.create_future()
                self._arrivals.add(arrival)
                try:
                    await asyncio.wait(
                        {arrival, ended}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    self._arrivals.discard(arrival)
            return taken
        finally:
            self._requests.pop(ticket, None)

    def give_back(self, msgs: list[Msg]) -> None:
        """Deliveries taken but not handed out: the next poll takes them first."""
        now = time.monotonic()
        self._held.extendleft((now, msg) for msg in reversed(msgs))
        self._wake()

    async def _pull(self, ticket: str, wanted: int, wait_s: float) -> None:
        ask: dict[str, int | bool] = {"batch": wanted}
        if wait_s > 0:
            ask["expires"] = int(wait_s * 1e9)
        else:
            ask["no_wait"] = True
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_AGENT_WORK}.{self.durable}"
        await self.nc.publish(subject, msgspec.json.encode(ask), reply=f"{self._inbox}.{ticket}")

    def _take_held(self, wanted: int) -> list[Msg]:
        fresh_since = time.monotonic() - self.ack_wait_s * FRESH_FRACTION
        taken: list[Msg] = []
        while self._held and len(taken) < wanted:
            arrived, msg = self._held.popleft()
            if arrived >= fresh_since:
                taken.append(msg)
        return taken

    async def _arrived(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status is None and msg.reply:
            self._held.append((time.monotonic(), msg))
            self._wake()
            return
        if status == "503" or (status == "409" and "deleted" in _description(msg).lower()):
            log.warning("consumer %s is gone (%s): opening it again", self.durable, status)
            self.broken = True
        if status in ENDS_REQUEST or self.broken:
            ticket = msg.subject.rpartition(".")[2]
            ended = self._requests.get(ticket)
            if ended is not None and not ended.done():
                ended.set_result(None)
        # 100: an idle heartbeat, never asked for; anything else ends with its request.

    def _wake(self) -> None:
        for arrival in self._arrivals:
            if not arrival.done():
                arrival.set_result(None)


def _description(msg: Msg) -> str:
    return str((msg.headers or {}).get("Description", ""))


class WorkQueues:
    """The queues of every project and capability agents have polled here, each opened
    at its first poll and kept."""

    def __init__(self, nc: Client, js: JetStreamContext, ack_wait_s: float) -> None:
        self.nc = nc
        self.js = js
        self.ack_wait_s = ack_wait_s
        self._queues: dict[tuple[str, str], WorkQueue] = {}
        self._lock = asyncio.Lock()  # opening is rare; two polls must not open one twice

    async def queue(self, project: str, capability: str) -> WorkQueue:
        key = (project, capability)
        found = self._queues.get(key)
        if found is not None and not found.broken:
            return found
        async with self._lock:
            found = self._queues.get(key)
            if found is not None and not found.broken:
                return found
            queue = WorkQueue(self.nc, project, capability, self.ack_wait_s)
            await queue.open(self.js)
            self._queues[key] = queue
        if found is not None:
            await found.close()
        return queue

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()
        self._queues.clear()
