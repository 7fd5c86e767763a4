"""Counting a scenario from what the platform recorded, not from what it answered.

The AIOP stream is the record of every outcome: each accepted workflow must have exactly
one distinct terminal event there (a republished copy keeps its event id, so it counts
once). The effects file says what the steps really did; task-manager (over the gateway)
and its ``workflows`` table must agree with the stream.

lost        no terminal event, no row, or task-manager does not show the outcome
duplicated  more than one distinct terminal event, a step effect twice in one attempt,
            two different completions of one step in one attempt, or a step run again
            in a later attempt after it had completed (it must be resumed instead)
wrong       ended, but not as its steps decide, without each step's effect in the
            attempt that ended it or in the earlier one it was resumed from, or with
            task-manager showing a step still unfinished
retried     finished in a later attempt (a killed attempt may have left effects; that is
            at-least-once execution of an attempt that never completed, not a duplicate)
refused     never accepted: the gateway kept refusing it past the load's give-up time
dead_lettered  records in AIOP_DLQ; they must be exactly the unprocessable messages
"""

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.contracts import (
    DeadLetterRecorded,
    StepCached,
    StepCompleted,
    WorkflowCompleted,
    WorkflowFailed,
)
from aiop.contracts.envelope import UndecodableEvent, decode_event
from aiop.contracts.states import FINAL_STEP_STATES, TERMINAL_WORKFLOW_STATES
from aiop.contracts.subjects import STREAM_DLQ, STREAM_EVENTS
from aiop.devstack import until
from tests.faults.harness import SEED, Platform

PRINTED: list[str] = []  # every ledger line of this session, in order


async def read_stream(platform: Platform, stream: str, subject: str, start: int = 1) -> list[Any]:
    """Every message of ``stream`` on ``subject`` from sequence ``start`` to its end now."""
    js = platform.nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    if last < start:
        return []
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, config=config)
    msgs = []
    try:
        while True:
            msg = await sub.next_msg(timeout=10)
            msgs.append(msg)
            # Messages stored after ``last`` are left for the next read.
            if msg.metadata.num_pending == 0 or msg.metadata.sequence.stream >= last:
                return msgs
    finally:
        await sub.unsubscribe()


def settled(view: dict[str, Any]) -> bool:
    """Terminal, and (as task-manager promises) no step of it still pending or running:
    a terminal view with an unfinished step stays unsettled and fails the scenario."""
    if view["state"] not in TERMINAL_WORKFLOW_STATES:
        return False
    return view["state"] == "rejected" or all(
        s["state"] in FINAL_STEP_STATES for s in view.get("steps") or []
    )


@dataclass
class Ledger:
    scenario: str
    accepted: dict[str, str]  # workflow id -> the state it is meant to end in
    terminal: dict[str, dict[str, tuple[str, int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # workflow id -> event id -> (succeeded|failed, attempt)
    step_done: dict[tuple[str, str, int], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # (workflow, step, attempt) -> completion event ids
    resumed: dict[tuple[str, str, int], int] = field(
        default_factory=dict
    )  # (workflow, step, attempt) -> the earlier attempt whose result it took
    next_seq: int = 1
    views: dict[str, str] = field(default_factory=dict)  # workflow id -> task-manager state
    # Views still not settled (a step pending or running) when we stopped asking.
    unsettled: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, str] = field(default_factory=dict)  # workflow id -> workflows.state
    effects: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    dead_letters: list[DeadLetterRecorded] = field(default_factory=list)
    refused: int = 0
    # (consumer, stream sequence) of every AIOP message no consumer could process: the
    # dead-letter stream must hold exactly these, each with a reason.
    unprocessable: set[tuple[str, int]] = field(default_factory=set)

    def fold(self, msg: Any) -> None:
        parts = msg.subject.split(".")
        kind = {
            "aiop.workflow.completed.v1": WorkflowCompleted,
            "aiop.workflow.failed.v1": WorkflowFailed,
            "aiop.step.completed.v1": StepCompleted,
            "aiop.step.cached.v1": StepCached,
        }.get(".".join(parts[:4]))
        if kind is None:
            return
        try:
            event = decode_event(msg.data, kind)
        except UndecodableEvent:
            return  # a poison message, not an outcome; the dead-letter check covers it
        # The event's own id: a redelivered copy (any Nats-Msg-Id) is the same event.
        event_id = event.event_id
        if isinstance(event, StepCompleted):
            self.step_done[(event.workflow_id, event.step, event.attempt)].add(event_id)
        elif isinstance(event, StepCached):
            if event.source == "resumed":
                self.resumed[(event.workflow_id, event.step, event.attempt)] = event.from_attempt
        else:
            state = "succeeded" if kind is WorkflowCompleted else "failed"
            self.terminal[event.workflow_id][event_id] = (state, event.attempt)

    async def follow(self, platform: Platform, timeout: float) -> None:
        """Read the AIOP stream until every accepted workflow has a terminal event."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                for msg in await read_stream(platform, STREAM_EVENTS, "aiop.>", self.next_seq):
                    self.fold(msg)
                    self.next_seq = msg.metadata.sequence.stream + 1
            except Exception as exc:  # a cluster electing a leader: read again shortly
                print(f"reading {STREAM_EVENTS} failed, retrying: {exc!r}")
            if all(self.terminal.get(wf) for wf in self.accepted):
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)

    async def ask_task_manager(self, platform: Platform, timeout: float) -> None:
        """Each workflow's state as the gateway shows it, once settled (steps folded)."""
        headers = {"Authorization": f"Bearer {platform.token}"}
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(
            base_url=platform.gateway_url, headers=headers, timeout=10
        ) as http:

            async def one(workflow_id: str) -> None:
                deadline = time.monotonic() + timeout
                async with limit:
                    while True:
                        reply = await http.get(f"/v1/workflows/{workflow_id}")
                        view = reply.json() if reply.status_code == 200 else None
                        if view is not None and settled(view):
                            self.views[workflow_id] = view["state"]
                            return
                        if time.monotonic() > deadline:
                            self.views[workflow_id] = (
                                view["state"] if view else str(reply.status_code)
                            )
                            self.unsettled[workflow_id] = view
                            return
                        await asyncio.sleep(0.2)

            await asyncio.gather(*(one(wf) for wf in self.accepted))

    async def read_database(self, platform: Platform) -> None:
        conn = await asyncpg.connect(platform.postgres.url)
        try:
            rows = await conn.fetch(
                "select id, state from workflows where id = any($1::text[])", list(self.accepted)
            )
        finally:
            await conn.close()
        ids = Counter(r["id"] for r in rows)
        assert all(n == 1 for n in ids.values()), f"workflow rows twice: {ids.most_common(3)}"
        self.rows = {r["id"]: r["state"] for r in rows}

    def read_effects(self, platform: Platform) -> None:
        if platform.effects.exists():
            for line in platform.effects.read_text().splitlines():
                workflow_id, step, attempt = line.split()
                self.effects[(workflow_id, step, int(attempt))] += 1

    async def read_dead_letters(self, platform: Platform) -> None:
        msgs = await read_stream(platform, STREAM_DLQ, "aiop.dlq.>")
        self.dead_letters = [decode_event(m.data, DeadLetterRecorded) for m in msgs]

    # -- verdict ----------------------------------------------------------------

    def outcome(self, workflow_id: str) -> str:
        """succeeded | failed | lost | duplicated | wrong (ended, but not as it should)."""
        ends = self.terminal.get(workflow_id, {})
        if len(ends) > 1:
            return "duplicated"
        if any(n > 1 for (wf, _, _), n in self.effects.items() if wf == workflow_id) or any(
            len(ids) > 1 for (wf, _, _), ids in self.step_done.items() if wf == workflow_id
        ):
            return "duplicated"
        if not ends:
            return "lost"
        state, attempt = next(iter(ends.values()))
        if self.views.get(workflow_id) != state or self.rows.get(workflow_id) != state:
            return "lost"  # the stream says it ended, task-manager does not know it
        if self._ran_again(workflow_id):
            return "duplicated"
        steps = {s for s in ("a", "b") if self._effect_behind(workflow_id, s, attempt)}
        if state != self.accepted[workflow_id] or steps != {"a", "b"}:
            return "wrong"
        if workflow_id in self.unsettled:
            return "wrong"  # ended, but task-manager still shows a step pending or running
        return state

    def _effect_behind(self, workflow_id: str, step: str, attempt: int) -> bool:
        """Whether ``step``'s result in ``attempt`` rests on an effect: its own, or that of
        the attempt it was resumed from."""
        while (workflow_id, step, attempt) not in self.effects:
            earlier = self.resumed.get((workflow_id, step, attempt))
            if earlier is None or earlier >= attempt:
                return False
            attempt = earlier
        return True

    def _ran_again(self, workflow_id: str) -> bool:
        """A step with an effect in a later attempt than one in which it had completed."""
        done = [(s, a) for (wf, s, a) in self.step_done if wf == workflow_id]
        return any(
            wf == workflow_id and s == step and a > completed
            for (wf, s, a) in self.effects
            for step, completed in done
        )

    def counts(self) -> dict[str, int]:
        outcomes = Counter(self.outcome(wf) for wf in self.accepted)
        retried = sum(
            1 for wf in self.accepted if any(a > 1 for _, a in self.terminal.get(wf, {}).values())
        )
        return {
            "accepted": len(self.accepted),
            "succeeded": outcomes["succeeded"],
            "failed": outcomes["failed"],
            "lost": outcomes["lost"],
            "duplicated": outcomes["duplicated"],
            "wrong": outcomes["wrong"],
            "retried": retried,
            "refused": self.refused,
            "dead_lettered": len(self.dead_letters),
        }

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"[{self.scenario}] seed={SEED} {counts}"

    def problems(self, limit: int = 5) -> list[str]:
        bad = [wf for wf in self.accepted if self.outcome(wf) not in ("succeeded", "failed")]
        return [
            f"{wf}: {self.outcome(wf)}; expected {self.accepted[wf]}, terminal events "
            f"{self.terminal.get(wf)}, task-manager {self.views.get(wf)}, row {self.rows.get(wf)}, "
            f"effects {sorted((s, a, n) for (w, s, a), n in self.effects.items() if w == wf)}"
            + (f", unsettled view {self.unsettled[wf]}" if wf in self.unsettled else "")
            for wf in bad[:limit]
        ]

    def check(self) -> None:
        """The pass condition: all accepted end exactly once, as meant, none lost."""
        print(self.line())
        PRINTED.append(self.line())  # for the terminal summary, which capture does not hide
        counts = self.counts()
        assert counts["accepted"] > 0, "nothing was accepted"
        assert counts["lost"] == counts["duplicated"] == counts["wrong"] == 0, "\n".join(
            [self.line(), *self.problems()]
        )
        recorded = {(r.consumer, r.stream_seq): r.reason for r in self.dead_letters}
        assert set(recorded) == self.unprocessable, (
            f"dead letters {sorted(recorded.items())}, expected {sorted(self.unprocessable)}"
        )
        assert all(recorded.values()), f"a dead letter without its reason: {recorded}"


async def drained(platform: Platform, stream: str = STREAM_EVENTS, timeout: float = 90) -> None:
    """Every durable consumer of ``stream`` has been handed, and has acked, everything.

    An ack lost in a fault is only noticed after the consumer's ack wait (30 s), when the
    message is delivered again; hence the long timeout."""
    jsm = platform.nc.jetstream()

    async def idle() -> bool:
        consumers = [c for c in await jsm.consumers_info(stream) if c.config.durable_name]
        return all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)

    await until(idle, timeout, f"every consumer of {stream} drained")


async def settle(platform: Platform, accepted: dict[str, str], scenario: str,
                 refused: int = 0, timeout: float = 120,
                 unprocessable: set[tuple[str, int]] | None = None) -> Ledger:  # fmt: skip
    """Wait for every accepted workflow to end, then gather every view of the outcome."""
    ledger = Ledger(scenario, dict(accepted), refused=refused, unprocessable=unprocessable or set())
    await ledger.follow(platform, timeout)
    await ledger.ask_task_manager(platform, timeout=30)
    await ledger.read_database(platform)
    # Once every consumer has caught up, read what was added meanwhile: a second terminal
    # event (a resend that should not have happened) shows up late, not first.
    await drained(platform)
    await ledger.follow(platform, timeout=0)
    ledger.read_effects(platform)
    await ledger.read_dead_letters(platform)
    return ledger
