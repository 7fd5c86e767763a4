"""Where agents take work and report on it (ADR 0014): the gateway's side of the lease.

A poll takes deliveries from the work queues of the agent's capabilities and makes each
a lease: its holder written to KV ``aiop_agent_leases``, its ack wait restarted. Work
its executor withdrew, of a cancelled workflow, or already answered is acked and never
handed out. Reports are checked against the lease record (only the current holder's are
taken), published as ``AgentReport``s, and each restarts the ack wait; a result or
failure is published first and acks the work after, so no answer is lost between them.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from aiop.contracts.agents import (
    KV_AGENT_LEASES,
    KV_AGENTS,
    REPORT,
    STREAM_AGENT_REPORTS,
    WORK,
    AgentRecord,
    AgentReport,
    AgentWork,
    Lease,
    lease_id,
    lease_sequence,
    report_subject,
    withdrawn_subject,
    work_subject,
)
from aiop.contracts.endpoints import AGENT_TOKEN
from aiop.contracts.events import DeadLetterRecorded, now
from aiop.contracts.subjects import InvalidToken
from aiop.gateway.adapters.agent_book import AgentBook, LeaseBook
from aiop.gateway.adapters.work_queues import WorkQueue, WorkQueues
from aiop.gateway.domain.agents import WorkLease, lease_is_live, offer, renewal_due
from aiop.servicekit import Service

if TYPE_CHECKING:
    from aiop.gateway.context import Gateway

log = logging.getLogger("aiop.gateway.agents")

ACK_TIMEOUT_S = 5.0
RECHECK_S = 1.0  # an agent at its concurrency: how often its poll looks for room again
RETRY_S = 0.5  # a pull refused before its time (a consumer recreated, too many waiting)

_work = msgspec.json.Decoder(AgentWork)


def serve_agents(
    svc: Service, gw: "Gateway", lease_ttl_s: float, poll_wait_s: float, replicas: int
) -> None:
    """Declare what serving agents takes on the bus, and open the desk when it starts."""
    svc.leases(f"{WORK}.>", AgentWork)  # a durable consumer per project and capability
    svc.publishes_to(f"{REPORT}.>", AgentReport)  # what holders report
    svc.reads(STREAM_AGENT_REPORTS)  # whether a try was withdrawn
    svc.uses_bucket(KV_AGENTS, KV_AGENT_LEASES)
    svc.asks(AGENT_TOKEN)
    svc.publishes(DeadLetterRecorded)  # work no agent can read
    desk = AgentDesk(svc, lease_ttl_s, poll_wait_s, lambda: gw.cancels)

    async def open_desk() -> None:
        await desk.open(replicas)
        gw.agents = desk

    svc.on_start(open_desk)
    svc.on_stop(desk.close)


class LeaseLost(Exception):
    """The lease is not (or no longer) the message's: it expired and the work went on."""


class NotYours(Exception):
    """The lease is current, but another agent's."""


class AgentDesk:
    def __init__(
        self,
        svc: Service,
        lease_ttl_s: float,
        poll_wait_s: float,
        cancels: Callable[[], KeyValue | None],
    ) -> None:
        self.svc = svc
        self.lease_ttl_s = lease_ttl_s
        self.poll_wait_s = poll_wait_s
        self._cancels = cancels  # KV aiop_cancels, opened by the gateway
        self._ended = asyncio.Event()  # set (and replaced) whenever a lease ends here

    async def open(self, replicas: int) -> None:
        self.agents = await AgentBook.open(self.svc.js, replicas)
        self.leases = await LeaseBook.open(self.svc.js, replicas)
        self.queues = WorkQueues(self.svc.nc, self.svc.js, self.lease_ttl_s)

    async def close(self) -> None:
        await self.queues.close()

    # -- load ---------------------------------------------------------------------------

    async def loads(self) -> Counter[str]:
        """How many live leases each agent holds."""
        at = now()
        return Counter(
            lease.agent_id
            for lease in await self.leases.held()
            if lease_is_live(lease, at, self.lease_ttl_s)
        )

    # -- taking work --------------------------------------------------------------------

    async def poll(
        self, agent: AgentRecord, capabilities: list[str], wanted: int, wait_s: float
    ) -> list[WorkLease]:
        """Up to ``wanted`` leases, no more than the agent has room for, as soon as there
        is work for one of ``capabilities``; none after ``wait_s`` without."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            left = max(0.0, deadline - loop.time())
            room = agent.concurrency - (await self.loads())[agent.agent_id]
            if room <= 0:
                ended = self._ended
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), min(left, RECHECK_S))
            else:
                taken = await self._take(agent.project, capabilities, min(wanted, room), left)
                # Once taken, deliveries become leases even if the poll is abandoned now:
                # a lease nobody hears of expires, and the work is offered again.
                offers = await asyncio.shield(self._offer_all(agent, taken))
                if offers:
                    return offers
                if not taken and loop.time() < deadline:
                    await asyncio.sleep(min(RETRY_S, deadline - loop.time()))
            if loop.time() >= deadline:
                return []

    async def _take(
        self, project: str, capabilities: list[str], wanted: int, wait_s: float
    ) -> list[tuple[WorkQueue, Msg]]:
        """Deliveries from the first of the capabilities' queues to have any; the rest of
        what comes is given back, to be taken by the next poll."""
        queues = [await self.queues.queue(project, c) for c in capabilities]
        takes = {asyncio.create_task(q.take(wanted, wait_s)): q for q in queues}
        try:
            pending = set(takes)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() or t.result() for t in done):
                    break
        except asyncio.CancelledError:  # the poll is abandoned: all goes back
            await _stopped(takes, keep=0)
            raise
        return await _stopped(takes, keep=wanted)

    async def _offer_all(
        self, agent: AgentRecord, taken: list[tuple[WorkQueue, Msg]]
    ) -> list[WorkLease]:
        offers = [await self._offer(agent, queue, msg) for queue, msg in taken]
        return [o for o in offers if o is not None]

    async def _offer(self, agent: AgentRecord, queue: WorkQueue, msg: Msg) -> WorkLease | None:
        """The delivery as a lease of ``agent``'s, or None if it is not to be done."""
        try:
            work = _work.decode(msg.data)
            offered_as = work_subject(work.project, work.capability)
        except (msgspec.DecodeError, msgspec.ValidationError, InvalidToken) as exc:
            await self._reject(msg, f"not an agent's work: {exc}")
            return None
        if offered_as != msg.subject:
            await self._reject(msg, f"work for {offered_as} offered on {msg.subject}")
            return None
        sequence, delivered = msg.metadata.sequence.stream, msg.metadata.num_delivered
        if await self.leases.ended(sequence) is not None or await self.given_up(work):
            await msg.ack()  # answered already (its ack lost), withdrawn, or cancelled
            return None
        at = now()
        lease = Lease(
            lease_id=lease_id(sequence, delivered), agent_id=agent.agent_id,
            project=work.project, capability=work.capability, work_id=work.work_id,
            workflow_id=work.workflow_id, attempt=work.attempt, step=work.step,
            try_number=work.try_number, ack_subject=msg.reply, leased_at=at, renewed_at=at,
        )  # fmt: skip
        await self.leases.hold(sequence, lease)
        await msg.in_progress()  # the lease's life starts now, not at the delivery
        log.info("%s leased %s to %s (%s)", queue.durable, work.work_id, agent.agent_id,
                 lease.lease_id)  # fmt: skip
        return offer(lease, work, self.lease_ttl_s)

    async def _reject(self, msg: Msg, reason: str) -> None:
        """Work no agent can do: kept in the dead-letter stream, never delivered again."""
        await self.svc.bus.dead_letter(msg, reason)
        await msg.term()

    async def given_up(self, work: AgentWork | Lease) -> bool:
        """Whether the executor withdrew this try, or its workflow was cancelled."""
        subject = withdrawn_subject(work.workflow_id, work.attempt, work.step, work.try_number)
        try:
            await self.svc.js.get_last_msg(STREAM_AGENT_REPORTS, subject)
            return True
        except nats.js.errors.NotFoundError:
            pass
        cancels = self._cancels()
        if cancels is None:
            return False
        try:
            await cancels.get(work.workflow_id)
        except nats.js.errors.NotFoundError:
            return False
        return True

    # -- reports on a lease -------------------------------------------------------------

    async def lease_of(self, agent_id: str, lease_id: str) -> tuple[Lease, int]:
        """The lease and its record's revision, if ``agent_id`` holds it now."""
        found = await self.leases.get(lease_id)
        if found is None or found[0].lease_id != lease_id:
            raise LeaseLost(lease_id)
        if found[0].agent_id != agent_id:
            raise NotYours(lease_id)
        return found

    async def renew(self, lease: Lease, revision: int) -> bool:
        """Restart the lease's life; whether its holder should stop (``cancelled``)."""
        await self.svc.nc.publish(lease.ack_subject, b"+WPI")
        at = now()
        if renewal_due(lease, at, self.lease_ttl_s):
            await self.leases.renew(lease, revision, at)
        return await self.given_up(lease)

    async def report(self, lease: Lease, report: AgentReport) -> None:
        """A progress or log report, for the executor running the step."""
        subject = report_subject(lease.workflow_id, lease.attempt, lease.step)
        await self.svc.send(subject, msgspec.json.encode(report), {})

    async def finish(self, lease: Lease, revision: int, report: AgentReport) -> None:
        """A result or failure: stored first (once, whoever repeats it), then the work
        acked, and the lease ended."""
        subject = report_subject(lease.workflow_id, lease.attempt, lease.step)
        msg_id = f"{lease.work_id}.{report.kind}"
        await self.svc.send(subject, msgspec.json.encode(report), {"Nats-Msg-Id": msg_id})
        # Acked with a reply: once answered, the work is surely gone from the stream.
        await self.svc.nc.request(lease.ack_subject, b"+ACK", timeout=ACK_TIMEOUT_S)
        await self.leases.end(lease, revision, report.kind)
        self._ended.set()
        self._ended = asyncio.Event()

    async def answered(self, agent_id: str, lease_id: str, kind: str) -> bool:
        """Whether ``agent_id`` already ended ``lease_id`` with a ``kind`` report."""
        sequence = lease_sequence(lease_id)
        done = await self.leases.ended(sequence) if sequence is not None else None
        return done is not None and (done.lease_id, done.agent_id, done.kind) == (
            lease_id, agent_id, kind,
        )  # fmt: skip


async def _stopped(
    takes: dict["asyncio.Task[list[Msg]]", WorkQueue], keep: int
) -> list[tuple[WorkQueue, Msg]]:
    """Stop the takes still waiting; the first ``keep`` deliveries taken, the rest given
    back to their queues (all of them if a take failed, whose error is raised)."""
    for task in takes:
        task.cancel()  # nothing for those done; the others take nothing more
    await asyncio.gather(*takes, return_exceptions=True)
    taken = [
        (queue, msg)
        for task, queue in takes.items()
        if not task.cancelled() and task.exception() is None
        for msg in task.result()
    ]
    errors = [e for t in takes if not t.cancelled() and (e := t.exception()) is not None]
    if errors:
        keep = 0
    for queue, msg in taken[keep:]:
        queue.give_back([msg])
    if errors:
        raise errors[0]
    return taken[:keep]
