"""The executor in-process against a real nats-server: requests in, events out."""

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from aiop.contracts import (
    EVENT_TYPES,
    Event,
    ExecutorHeartbeat,
    StepCached,
    StepCompleted,
    StepFailed,
    StepSpec,
    StepStarted,
    WorkflowRequested,
    WorkflowSpec,
)
from aiop.contracts.cancels import CancelRequest
from aiop.contracts.envelope import decode_event
from aiop.contracts.events import now
from aiop.contracts.subjects import HEARTBEAT_ALL, KV_CANCELS, KV_CLAIMS

from .conftest import alive

pytestmark = pytest.mark.integration
PY = sys.executable
TERMINAL = ("aiop.workflow.completed.v1", "aiop.workflow.failed.v1", "aiop.workflow.cancelled.v1")


class Watcher:
    """Every AIOP event, in stream order, and a way to wait for one."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._events: list[tuple[int, Event]] = []  # (stream sequence, event)
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        js = self.nc.jetstream()
        await js.subscribe("aiop.workflow.>", cb=self._on, ordered_consumer=True)
        await js.subscribe("aiop.step.>", cb=self._on, ordered_consumer=True)

    async def _on(self, msg) -> None:  # type: ignore[no-untyped-def]
        kind = EVENT_TYPES[(msg.headers or {})["ce-type"]]
        async with self._changed:
            self._events.append((msg.metadata.sequence.stream, decode_event(msg.data, kind)))
            self._changed.notify_all()

    def of(self, workflow_id: str) -> list[Event]:
        """The workflow's events in stream order (the two subscriptions interleave freely)."""
        ordered = [e for _, e in sorted(self._events, key=lambda pair: pair[0])]
        return [e for e in ordered if getattr(e, "workflow_id", None) == workflow_id]

    async def changed(self) -> None:
        """Return once another event has come in."""
        async with self._changed:
            await self._changed.wait()

    async def terminal(self, workflow_id: str, timeout: float = 20) -> Event:
        """The workflow's terminal event, once every earlier event of the stream is in too."""

        def found() -> Event | None:
            # The stream is this test's own and starts at 1, so "no gaps below seq" is a count.
            for seq, event in self._events:
                if (
                    getattr(event, "workflow_id", None) == workflow_id
                    and event.TYPE in TERMINAL
                    and sum(1 for s, _ in self._events if s <= seq) == seq
                ):
                    return event
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(found), timeout)
        event = found()
        assert event is not None
        return event


async def request(nc: Client, workflow_id: str, *steps: StepSpec, attempt: int = 1) -> None:
    event = WorkflowRequested(
        workflow_id=workflow_id,
        pool="default",
        attempt=attempt,
        spec=WorkflowSpec(name="it", steps=list(steps)),
    )
    await nc.jetstream().publish(
        event.subject(),
        msgspec.json.encode(event),
        headers={"Nats-Msg-Id": event.event_id, "ce-type": event.TYPE},
    )


def kinds(events: list[Event]) -> list[str]:
    return [
        f"{e.TYPE.split('.')[1]}.{e.TYPE.split('.')[2]}:{getattr(e, 'step', '')}" for e in events
    ]


async def test_workflow_runs_to_completion_in_dag_order(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    await request(
        executor,
        "wf-ok",
        StepSpec(name="build", run=[PY, "-c", "print('built')"]),
        StepSpec(name="test", run=[PY, "-c", "print('tested')"], needs=["build"]),
    )
    done = await watcher.terminal("wf-ok")
    assert done.TYPE == "aiop.workflow.completed.v1"
    assert kinds(watcher.of("wf-ok")) == [
        "workflow.requested:",
        "workflow.started:",
        "step.started:build",
        "step.completed:build",
        "step.started:test",
        "step.completed:test",
        "workflow.completed:",
    ]
    kv = await executor.jetstream().key_value(KV_CLAIMS)
    claim = await kv.get("wf-ok.a1")
    assert (claim.value or b"").decode().startswith("default-")


async def test_failing_step_fails_the_workflow_with_code_and_tail(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    await request(
        executor,
        "wf-bad",
        StepSpec(name="boom", run=[PY, "-c", "print('oops'); raise SystemExit(7)"]),
    )
    failed = await watcher.terminal("wf-bad")
    assert failed.TYPE == "aiop.workflow.failed.v1"
    assert failed.failed_step == "boom"  # type: ignore[attr-defined]
    (step,) = [e for e in watcher.of("wf-bad") if isinstance(e, StepFailed)]
    assert step.exit_code == 7
    assert "oops" in step.output_tail


async def test_a_request_delivered_twice_runs_once(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    step = StepSpec(name="once", run=[PY, "-c", "print('ran')"])
    await request(executor, "wf-dup", step)
    await request(executor, "wf-dup", step)  # same workflow and attempt, new event id
    # Requests are handled in order by the pool's one consumer: once the sentinel ends,
    # the duplicate has been handled too.
    await request(executor, "wf-sentinel", step)
    await watcher.terminal("wf-sentinel")
    await watcher.terminal("wf-dup")
    events = watcher.of("wf-dup")
    assert kinds(events).count("workflow.requested:") == 2
    assert kinds(events).count("workflow.started:") == 1
    assert kinds(events).count("step.started:once") == 1
    assert kinds(events).count("workflow.completed:") == 1


async def test_heartbeats_announce_pool_capabilities_and_slots(executor: Client) -> None:
    sub = await executor.subscribe(HEARTBEAT_ALL)
    beat = decode_event((await sub.next_msg(timeout=5)).data, ExecutorHeartbeat)
    assert beat.pool == "default"
    assert "local" in beat.capabilities
    assert beat.slots == 8
    assert beat.interval_s == 0.2
    assert (beat.capacity, beat.load, beat.runners, beat.labels) == (16, 0, ["local"], ["gpu"])
    assert "gpu" in beat.capabilities  # a label is something a workflow may require
    # A local-only executor has no engine to speak of, and no circuit; nothing looked up.
    assert (beat.engine_reachable, beat.engine_detail) == (None, "local runner configured")
    assert beat.circuits == {}
    assert beat.started_at is not None
    assert (beat.cache_hits, beat.cache_misses, beat.cache_outputs_gone) == (0, 0, 0)
    await sub.unsubscribe()


async def test_an_attempt_claimed_elsewhere_is_left_alone(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    kv = await executor.jetstream().key_value(KV_CLAIMS)
    await kv.create("wf-other.a1", b"default-elsewhere-1")
    step = StepSpec(name="s", run=[PY, "-c", "pass"])
    await request(executor, "wf-other", step)
    await request(executor, "wf-sentinel2", step)  # handled after wf-other (one consumer, in order)
    await watcher.terminal("wf-sentinel2")
    assert kinds(watcher.of("wf-other")) == ["workflow.requested:"]


async def ask_cancel(nc: Client, workflow_id: str) -> None:
    kv = await nc.jetstream().key_value(KV_CANCELS)
    await kv.create(workflow_id, msgspec.json.encode(CancelRequest(principal="alice",
                                                                   requested_at=now())))  # fmt: skip


async def test_a_cancel_stops_the_running_step_and_starts_no_more(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    output = await executor.subscribe("aiop.output.appended.v1.wf-cancel")
    hang = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(300)"
    await request(
        executor, "wf-cancel",
        StepSpec(name="long", run=[PY, "-c", hang]),
        StepSpec(name="after", run=[PY, "-c", "print('never')"], needs=["long"]),
    )  # fmt: skip
    said = msgspec.json.decode((await output.next_msg(timeout=20)).data)["text"]
    pid = int(said.split()[1])
    await ask_cancel(executor, "wf-cancel")
    cancelled = await watcher.terminal("wf-cancel", timeout=10)
    assert cancelled.TYPE == "aiop.workflow.cancelled.v1"
    assert cancelled.cancelled_by == "alice"  # type: ignore[attr-defined]
    assert cancelled.reason == "cancelled by alice"  # type: ignore[attr-defined]
    assert cancelled.executor_id.startswith("default-")  # type: ignore[attr-defined]
    assert not alive(pid), "the step's process outlived the cancel"
    assert kinds(watcher.of("wf-cancel")) == [
        "workflow.requested:", "workflow.started:", "step.started:long", "workflow.cancelled:",
    ]  # fmt: skip
    await ask_cancel(executor, "wf-cancel2")  # a key for a workflow no one runs: no effect


async def test_a_request_for_a_cancelled_workflow_ends_without_a_step(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    await ask_cancel(executor, "wf-precancelled")
    await request(executor, "wf-precancelled", StepSpec(name="s", run=[PY, "-c", "pass"]))
    cancelled = await watcher.terminal("wf-precancelled")
    assert cancelled.TYPE == "aiop.workflow.cancelled.v1"
    assert kinds(watcher.of("wf-precancelled")) == ["workflow.requested:", "workflow.cancelled:"]


BUILD = (
    "import os; os.makedirs('out', exist_ok=True); open('out/app.txt', 'w').write(os.environ['V'])"
)
CHECK = "open('report.txt', 'w').write('got ' + open('in/out/app.txt').read())"


def pipeline(version: str, check_cache: bool = True) -> list[StepSpec]:
    return [
        StepSpec(name="build", run=[PY, "-c", BUILD], env={"V": version}, outputs=["out"]),
        StepSpec(name="check", run=[PY, "-c", CHECK], needs=["build"], inputs={"build": "in"},
                 outputs=["report.txt"], cache=check_cache),
    ]  # fmt: skip


def steps_of(events: list[Event], kind: type[Event]) -> list[str]:
    return [e.step for e in events if isinstance(e, kind)]  # type: ignore[attr-defined]


async def test_a_second_run_is_cache_hits_and_a_change_reruns_downstream(
    executor: Client, tmp_path: Path
) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    await request(executor, "wf-c1", *pipeline("v1"))
    assert (await watcher.terminal("wf-c1")).TYPE == "aiop.workflow.completed.v1"
    first = watcher.of("wf-c1")
    assert steps_of(first, StepStarted) == ["build", "check"]
    built = next(e for e in first if isinstance(e, StepCompleted) and e.step == "build")
    assert built.outputs_digest
    assert built.outputs_size > 0

    await request(executor, "wf-c2", *pipeline("v1"))
    assert (await watcher.terminal("wf-c2")).TYPE == "aiop.workflow.completed.v1"
    again = watcher.of("wf-c2")
    assert steps_of(again, StepStarted) == []
    hits = [e for e in again if isinstance(e, StepCached)]
    assert [(e.step, e.source, e.from_workflow_id) for e in hits] == [
        ("build", "cache", "wf-c1"), ("check", "cache", "wf-c1"),
    ]  # fmt: skip
    assert hits[0].outputs_digest == built.outputs_digest
    # The outputs are restored where the step would have left them.
    work = tmp_path / "work" / "wf-c2" / "1"
    assert (work / "build" / "out" / "app.txt").read_text() == "v1"
    assert (work / "check" / "report.txt").read_text() == "got v1"

    await request(executor, "wf-c3", *pipeline("v2"))
    assert (await watcher.terminal("wf-c3")).TYPE == "aiop.workflow.completed.v1"
    changed = watcher.of("wf-c3")
    assert steps_of(changed, StepStarted) == ["build", "check"]  # and what needs it
    report = tmp_path / "work" / "wf-c3" / "1" / "check" / "report.txt"
    assert report.read_text() == "got v2"  # it was given the new build's outputs

    await request(executor, "wf-c4", *pipeline("v1", check_cache=False))
    await watcher.terminal("wf-c4")
    assert steps_of(watcher.of("wf-c4"), StepStarted) == ["check"]  # opted out: it runs


async def test_a_missing_output_fails_the_step(executor: Client) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    await request(executor, "wf-nout", StepSpec(name="s", run=[PY, "-c", "pass"],
                                                outputs=["dist/"]))  # fmt: skip
    assert (await watcher.terminal("wf-nout")).TYPE == "aiop.workflow.failed.v1"
    (failed,) = [e for e in watcher.of("wf-nout") if isinstance(e, StepFailed)]
    assert "did not produce output dist/" in failed.error


async def test_a_later_attempt_resumes_the_steps_an_earlier_one_completed(
    executor: Client,
) -> None:
    watcher = Watcher(executor)
    await watcher.start()
    steps = [
        StepSpec(name="a", run=[PY, "-c", "print('a ran')"], cache=False),
        StepSpec(name="b", run=[PY, "-c", "raise SystemExit(1)"], needs=["a"], cache=False),
    ]
    await request(executor, "wf-res", *steps, attempt=1)
    await watcher.terminal("wf-res")
    await request(executor, "wf-res", *steps, attempt=2)
    async with asyncio.timeout(20):
        while len([e for e in watcher.of("wf-res") if e.TYPE in TERMINAL]) < 2:
            await watcher.changed()
    second = [e for e in watcher.of("wf-res") if getattr(e, "attempt", 0) == 2]
    assert steps_of(second, StepStarted) == ["b"]
    (resumed,) = [e for e in second if isinstance(e, StepCached)]
    assert (resumed.step, resumed.source, resumed.from_attempt) == ("a", "resumed", 1)
