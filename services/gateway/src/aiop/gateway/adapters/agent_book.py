"""What the gateway keeps of agents, in two key-value buckets any replica reads:

- KV ``aiop_agents``: each registered agent (``AgentRecord``) under its id. Entries
  expire a day after their last write, and a live agent's polls rewrite its record (at
  most every TOUCH_EVERY_S), so an agent that went away without a word disappears.
- KV ``aiop_agent_leases``: the current holder (``Lease``) of each work message, under
  the message's stream sequence, and ``done.<sequence>`` once a holder answered it with
  a result or failure: an answer repeated after its lease record is gone is still known,
  and a message answered but not acked (the ack was lost) is not handed out again.
"""

import contextlib
from datetime import datetime, timedelta

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from aiop.contracts.agents import KV_AGENT_LEASES, KV_AGENTS, AgentRecord, Lease, lease_sequence
from aiop.servicekit import open_bucket
from aiop.servicekit.kv import current_values

RECORDS_TTL_S = 24 * 3600.0  # a record unwritten this long is of an agent long gone
TOUCH_EVERY = timedelta(seconds=5)  # the most often an agent's last heartbeat is written

_record = msgspec.json.Decoder(AgentRecord)
_lease = msgspec.json.Decoder(Lease)


class AgentBook:
    """Registered agents (KV ``aiop_agents``)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int) -> "AgentBook":
        return cls(await open_bucket(js, KV_AGENTS, replicas=replicas, ttl_s=RECORDS_TTL_S))

    async def add(self, record: AgentRecord) -> None:
        await self.kv.create(record.agent_id, msgspec.json.encode(record))

    async def get(self, agent_id: str) -> tuple[AgentRecord, int] | None:
        """The agent and its record's revision; None if it is not (or no longer) there."""
        try:
            entry = await self.kv.get(agent_id)
        except nats.js.errors.NotFoundError:
            return None
        return (_record.decode(entry.value), entry.revision or 0) if entry.value else None

    async def remove(self, agent_id: str) -> None:
        await self.kv.delete(agent_id)

    async def all(self) -> list[AgentRecord]:
        return [_record.decode(value) for value in await current_values(self.kv, ">")]

    async def touch(self, record: AgentRecord, revision: int, now: datetime) -> None:
        """Note the agent was heard from at ``now``, unless noted a moment ago. Only over
        the revision read: an agent removed meanwhile stays removed."""
        if now - record.last_heartbeat < TOUCH_EVERY:
            return
        touched = msgspec.structs.replace(record, last_heartbeat=now)
        # Removed meanwhile, or touched by another request: either way nothing to do.
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await self.kv.update(record.agent_id, msgspec.json.encode(touched), last=revision)


class Answered(msgspec.Struct, frozen=True):
    """A work message answered: by which lease and agent, with a result or a failure."""

    lease_id: str
    agent_id: str
    kind: str


_answered = msgspec.json.Decoder(Answered)


class LeaseBook:
    """The holder of each work message (KV ``aiop_agent_leases``). Every change to a
    record is made over the revision read, so a redelivery's new holder is never
    overwritten by the old one's renewal or end."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int) -> "LeaseBook":
        # A day: as long as the work stream keeps an offer.
        return cls(await open_bucket(js, KV_AGENT_LEASES, replicas=replicas, ttl_s=RECORDS_TTL_S))

    async def hold(self, sequence: int, lease: Lease) -> None:
        """``lease`` holds the message now: a redelivery replaces the older holder."""
        await self.kv.put(str(sequence), msgspec.json.encode(lease))

    async def get(self, lease_id: str) -> tuple[Lease, int] | None:
        """The current holder of the message ``lease_id`` names, whoever that is, and its
        record's revision."""
        sequence = lease_sequence(lease_id)
        if sequence is None:
            return None
        try:
            entry = await self.kv.get(str(sequence))
        except nats.js.errors.NotFoundError:
            return None
        return (_lease.decode(entry.value), entry.revision or 0) if entry.value else None

    async def held(self) -> list[Lease]:
        """Every lease record; the ``done.`` markers are keys of two tokens, left out."""
        return [_lease.decode(value) for value in await current_values(self.kv, "*")]

    async def renew(self, lease: Lease, revision: int, now: datetime) -> None:
        renewed = msgspec.structs.replace(lease, renewed_at=now)
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await self.kv.update(_key(lease), msgspec.json.encode(renewed), last=revision)

    async def end(self, lease: Lease, revision: int, kind: str) -> None:
        """The lease ended with a ``kind`` report: remember that, then drop the record."""
        done = Answered(lease_id=lease.lease_id, agent_id=lease.agent_id, kind=kind)
        await self.kv.put(f"done.{_key(lease)}", msgspec.json.encode(done))
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await self.kv.delete(_key(lease), last=revision)

    async def ended(self, sequence: int) -> Answered | None:
        """How the work message at ``sequence`` was answered, if it was."""
        try:
            entry = await self.kv.get(f"done.{sequence}")
        except nats.js.errors.NotFoundError:
            return None
        return _answered.decode(entry.value) if entry.value else None


def _key(lease: Lease) -> str:
    return str(lease_sequence(lease.lease_id))
