"""The workflow fold under random event streams (hypothesis stateful testing).

Honest producers (the distributor, the executors of each attempt, a rerun's executor)
emit the events a real run can emit; the bus then delivers each one at once or holds
it back and delivers it late (reordering), and redelivers any event already delivered
(duplicates). A second workflow may rerun the first one, taking the stored results of
some of its steps (``WorkflowSpec.reuse``). Every delivery goes through the real
``fold``; after each one the rules of ``domain/state.py`` are checked:

* only the moves of ``WORKFLOW_MOVES`` and ``STEP_MOVES`` happen, each for its reason;
* the first terminal event delivered decides the one terminal state, which never
  changes; after it only a step's own end in the attempt that finished still lands;
* nothing succeeds without a start, in the precise sense of ``_check_completion``;
* a rerun's events never change the run it reruns, nor any other workflow.
"""

import pickle
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import event as record
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aiop.contracts import (
    StepCached,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepSpec,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowQueued,
    WorkflowRequested,
    WorkflowSpec,
    WorkflowStarted,
    WorkflowSubmitted,
)
from aiop.contracts.events import Origin, StepEvent
from aiop.contracts.states import FINAL_STEP_STATES, STEP_RANK, TERMINAL_WORKFLOW_STATES
from aiop.task_manager.domain import Applied, Ignored, Illegal, Step, Workflow, fold, new_workflow

SPEC = WorkflowSpec(
    name="build",
    steps=[
        StepSpec(name="lint", run=["ruff"]),
        StepSpec(name="test", run=["pytest"], needs=["lint"]),
        StepSpec(name="pkg", run=["build"], needs=["lint"]),
    ],
)
STEPS = [s.name for s in SPEC.steps]
ORIGINAL = "wf-original"
# What the producers send (every one names its attempt).
Delivered = (
    WorkflowQueued | WorkflowRequested | WorkflowStarted | WorkflowCompleted | WorkflowFailed
    | WorkflowCancelled | StepEvent
)  # fmt: skip

# -- The legal moves, from the rules in domain/state.py and contracts/states.py ---------------

# The workflow: (before, after) -> how the fold may make that move.
#   forward  a WorkflowQueued/Requested/Started moving (attempt, rank) forward
#   end      the first WorkflowCompleted/Failed/Cancelled, from any attempt
#   step     a step event: the workflow's own fields do not change
_ACTIVE = ("accepted", "queued", "running")
_ENDS = {"succeeded": WorkflowCompleted, "failed": WorkflowFailed, "cancelled": WorkflowCancelled}
WORKFLOW_MOVES: dict[tuple[str, str], frozenset[str]] = {
    ("accepted", "accepted"): frozenset({"step"}),
    ("accepted", "queued"): frozenset({"forward"}),
    ("accepted", "running"): frozenset({"forward"}),
    ("queued", "queued"): frozenset({"forward", "step"}),  # requested, or a new attempt
    ("queued", "running"): frozenset({"forward"}),
    ("running", "queued"): frozenset({"forward"}),  # only in a new attempt (checked)
    ("running", "running"): frozenset({"forward", "step"}),  # forward: a new attempt
    **{(a, end): frozenset({"end"}) for a in _ACTIVE for end in _ENDS},
    # Terminal: the workflow never moves again; only steps may still change.
    **{(end, end): frozenset({"step"}) for end in _ENDS},
    # "rejected" has no move at all: every event is Illegal for it.
}

# A step: (before, after) -> how the fold may make that move.
#   forward      its own event, same attempt, moving STEP_RANK forward
#   retry        StepRetrying of the same attempt: still running, a later try
#   new_attempt  its own event of a later attempt: nothing of the old run carries over
#   reset        the workflow moved to a later attempt: a pending/running step starts over
#   close_out    the workflow's end closes a pending/running step (``_close_out``)
#   refine       the real end of a step its workflow closed, same attempt
_P, _R = "pending", "running"
STEP_MOVES: dict[tuple[str, str], frozenset[str]] = {
    (_P, _P): frozenset({"reset"}),
    (_R, _P): frozenset({"reset"}),
    (_P, _R): frozenset({"forward", "new_attempt"}),
    (_R, _R): frozenset({"retry", "new_attempt"}),
    **{(_P, f): frozenset({"forward", "new_attempt"}) for f in FINAL_STEP_STATES},
    **{(_R, f): frozenset({"forward", "new_attempt"}) for f in FINAL_STEP_STATES},
    **{(f, _R): frozenset({"new_attempt"}) for f in FINAL_STEP_STATES},
    **{
        (f, g): frozenset({"refine", "new_attempt"})
        for f in FINAL_STEP_STATES
        for g in FINAL_STEP_STATES
    },
}
# What closing out makes of a step (after a new attempt's reset), by the workflow's end.
CLOSE_OUT = {
    ("succeeded", _P): "succeeded",
    ("succeeded", _R): "succeeded",
    ("failed", _P): "skipped",
    ("failed", _R): "cancelled",
    ("cancelled", _P): "skipped",
    ("cancelled", _R): "cancelled",
}
for (_end, _before), _after in CLOSE_OUT.items():
    STEP_MOVES[_before, _after] = STEP_MOVES[_before, _after] | {"close_out"}
    if _before == _P:  # running in an older attempt: reset by the end's attempt, then closed
        STEP_MOVES[_R, _after] = STEP_MOVES[_R, _after] | {"close_out"}
        # ended in a newer attempt than the one that won: taken back, then closed
        for _f in FINAL_STEP_STATES:
            STEP_MOVES[_f, _after] = STEP_MOVES.get((_f, _after), frozenset()) | {"close_out"}


def _wf_fields(wf: Workflow) -> Workflow:
    """The workflow's own fields, its steps left out."""
    return replace(wf, steps=())


def step_move(before: Step, after: Step, event: Delivered, wf_before: Workflow) -> str:
    """Why the fold moved ``before`` to ``after`` on ``event`` (checked against the
    table by the caller); fails when the move fits none of the rules."""
    if isinstance(event, StepEvent):
        assert event.step == before.name, f"{event.TYPE} for {event.step!r} moved {before.name!r}"
        assert after.attempt == event.attempt
        assert not after.closed_by_workflow
        if after.attempt > before.attempt:
            return "new_attempt"
        assert after.attempt == before.attempt, "a step event moved a step to an older attempt"
        if before.closed_by_workflow and after.state in FINAL_STEP_STATES:
            return "refine"
        if before.state == after.state == _R:
            assert isinstance(event, StepRetrying)
            assert after.tries > before.tries
            return "retry"
        assert STEP_RANK[after.state] > STEP_RANK[before.state], (before, after)
        return "forward"
    if isinstance(event, WorkflowQueued | WorkflowRequested | WorkflowStarted):
        assert before.state in (_P, _R)
        assert after == Step(before.name, before.needs, attempt=event.attempt), after
        assert event.attempt > before.attempt
        return "reset"
    assert isinstance(event, WorkflowCompleted | WorkflowFailed | WorkflowCancelled)
    # An older attempt that wins takes back what a newer one did to a step, ended or not;
    # a completion takes back a step that ended otherwise than well: the step starts over
    # in the winning attempt and is closed out (``_as_of``).
    taken_back = before.attempt > event.attempt or (
        isinstance(event, WorkflowCompleted)
        and before.state in FINAL_STEP_STATES
        and before.state not in ("succeeded", "cached")
    )
    if not taken_back:
        assert before.state in (_P, _R), "closing out touched a step that had ended"
    # An end of a later attempt first resets what is unfinished of older ones (``_finish``).
    reset = event.attempt > wf_before.attempt and before.attempt < event.attempt
    effective = _P if reset or taken_back else before.state
    end = next(s for s, kind in _ENDS.items() if isinstance(event, kind))
    assert after.state == CLOSE_OUT[end, effective], (end, before, after)
    assert after.closed_by_workflow
    assert after.attempt == event.attempt
    assert after.finished_at == event.occurred_at
    return "close_out"


# -- The producers' truth ---------------------------------------------------------------------


@dataclass
class Attempt:
    """One attempt as its distributor and executor know it."""

    number: int
    executor: str
    requested: bool = False
    started: bool = False
    ended: bool = False  # its executor sent the workflow's end
    lost: bool = False  # its executor died: it sends nothing more
    steps: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STEPS, _P))
    tries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))

    @property
    def live(self) -> bool:
        return self.started and not self.ended and not self.lost


@dataclass
class Run:
    """One workflow: what its producers did, and what the bus delivered to the fold."""

    id: str
    spec: WorkflowSpec
    wf: Workflow
    rerun_of: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    finished: bool = False  # a terminal event was produced
    held: list[Delivered] = field(default_factory=list)  # produced, held back by the bus
    delivered: list[Delivered] = field(default_factory=list)
    in_order: bool = True  # no event was ever held back
    first_end: str | None = None  # the state of the first terminal event delivered
    seen_running: set[int] = field(default_factory=set)  # attempts the fold saw running

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


# What an open step does next, by a draw from 0 to 9.
PENDING_MOVES = ["start"] * 6 + ["fail", "cached", "cached", "skip"]
RUNNING_MOVES = ["retry"] * 2 + ["complete"] * 6 + ["fail"] * 2


def _pick(items: list[Attempt], index: int) -> Attempt | None:
    return items[index % len(items)] if items else None


class WorkflowFold(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, Run] = {}
        self.deliveries = 0
        self.reorders = True  # whether the bus may hold events back (set by submit)

    # -- the bus ---------------------------------------------------------------------------

    def emit(self, run: Run, event: Delivered, hold: bool) -> None:
        if hold and self.reorders:
            run.held.append(event)
            run.in_order = False
        else:
            self.deliver(run, event)

    def deliver(self, run: Run, event: Delivered) -> None:
        self.deliveries += 1
        others = {rid: (r.wf, pickle.dumps(r.wf)) for rid, r in self.runs.items() if r is not run}
        before = run.wf
        outcome = fold(before, event)
        if isinstance(outcome, Applied):
            run.wf = outcome.workflow
            self._check_applied(run, before, run.wf, event)
            # Applied once, the same event again is a duplicate.
            assert isinstance(fold(run.wf, event), Ignored), event
        elif before.state == "rejected":
            assert isinstance(outcome, Illegal), outcome
        else:
            # The producers only name real steps: nothing is Illegal for an accepted run.
            assert isinstance(outcome, Ignored), (event, outcome)
        if before.state == "rejected":
            assert isinstance(outcome, Illegal)
        run.delivered.append(event)
        # Folding one workflow's events (a rerun's above all) never touches another one.
        for rid, (wf, blob) in others.items():
            assert self.runs[rid].wf is wf
            assert pickle.dumps(self.runs[rid].wf) == blob, (
                f"{event.TYPE} of {run.id} changed {rid}"
            )

    def _check_applied(self, run: Run, before: Workflow, after: Workflow, event: Delivered) -> None:
        own_before, own_after = _wf_fields(before), _wf_fields(after)
        if isinstance(event, StepEvent):
            kind = "step"
            assert own_after == own_before, "a step event changed the workflow's own fields"
        elif isinstance(event, WorkflowCompleted | WorkflowFailed | WorkflowCancelled):
            kind = "end"
            assert after.state in _ENDS
            assert isinstance(event, _ENDS[after.state])
            assert after.attempt == event.attempt
        else:
            kind = "forward"
            assert after.position > before.position, (before.position, after.position)
            if (before.state, after.state) == ("running", "queued") or (
                before.state == after.state == "running"
            ):
                assert after.attempt > before.attempt, (
                    "a running workflow moved back in its attempt"
                )
        move = (before.state, after.state)
        assert kind in WORKFLOW_MOVES.get(move, frozenset()), f"illegal move {move} by {kind}"
        if after.state == "running":
            run.seen_running.add(after.attempt)

        # The end: the first terminal event delivered decides it, and it never changes.
        if before.state in TERMINAL_WORKFLOW_STATES:
            assert kind == "step", f"{event.TYPE} applied to a {before.state} workflow"
            assert isinstance(event, StepEvent)
            assert event.attempt == before.attempt, "a step of another attempt landed after the end"
        if kind == "end":
            record(
                f"end: {after.state}, attempts: {len(run.attempts)}, in order: {run.in_order},"
                f" older attempt won: {after.attempt < before.attempt}, rerun: {run.rerun_of is not None}"
            )
            assert run.first_end is None
            run.first_end = after.state
            self._check_completion(run, before, after, event)

        # Every step: a move of the table, for the reason the table gives.
        assert [s.name for s in after.steps] == [s.name for s in before.steps]
        for old, new in zip(before.steps, after.steps, strict=True):
            if old == new:
                continue
            why = step_move(old, new, event, before)
            ended = " after the end" if before.state in TERMINAL_WORKFLOW_STATES else ""
            record(f"step move: {why}{ended}")
            assert why in STEP_MOVES.get((old.state, new.state), frozenset()), (
                f"illegal step move {old.state} -> {new.state} by {why} on {event.TYPE}"
            )
            if before.state in TERMINAL_WORKFLOW_STATES:
                self._check_after_the_end(run, before, old, new, event, why)

    def _check_after_the_end(
        self, run: Run, wf: Workflow, old: Step, new: Step, event: Delivered, why: str
    ) -> None:
        """After the end only a step's real end lands: it refines what closing out wrote,
        or replaces the end of an older attempt by that of the attempt that finished."""
        assert event.attempt == wf.attempt
        if new.state in FINAL_STEP_STATES and old.state in FINAL_STEP_STATES:
            assert why in ("refine", "new_attempt"), why
            return
        raise AssertionError(f"after the end, {event.TYPE} moved {old} to {new} ({why})")

    def _check_completion(
        self, run: Run, before: Workflow, after: Workflow, event: Delivered
    ) -> None:
        """No completion without a start, as precisely as the fold allows.

        The fold does *not* require a start before an end: a WorkflowCompleted delivered
        before its WorkflowStarted applies (the start, late, is then ignored); a
        WorkflowCancelled applies to a workflow no executor took; a StepCompleted lands on
        a pending step whose StepStarted is late, a StepFailed on one that never started
        (spawn error), and StepCached/StepSkipped never start. What holds instead:

        * the producers never ended an attempt they had not started (the distributor's
          cancel aside);
        * delivered in order, with one attempt, a succeeded workflow was seen running, and
          so was each step that its own StepCompleted ended.
        """
        if isinstance(event, WorkflowCompleted | WorkflowFailed):
            assert run.attempts[event.attempt - 1].started
        if not isinstance(event, WorkflowCompleted):
            return
        if run.in_order and len(run.attempts) == 1:
            assert event.attempt in run.seen_running
            assert after.started_at is not None
            assert before.state == "running"
            for step in after.steps:
                if step.state == "succeeded" and not step.closed_by_workflow:
                    assert step.started_at is not None, step

    # -- submissions -------------------------------------------------------------------------

    @initialize(reorders=st.booleans())
    def submit(self, reorders: bool) -> None:
        """The original run. The bus delivers it and its reruns in order (duplicates
        aside) or, with ``reorders``, holds events back to deliver them late."""
        self.reorders = reorders
        wf, problems = new_workflow(
            WorkflowSubmitted(workflow_id=ORIGINAL, spec=SPEC, principal="me")
        )
        assert problems == []
        assert wf.state == "accepted"
        assert [(s.name, s.state) for s in wf.steps] == [(n, _P) for n in STEPS]
        self.runs[ORIGINAL] = Run(ORIGINAL, SPEC, wf)

    @precondition(lambda self: len(self.runs) < 4)
    @rule(data=st.data())
    def rerun(self, data: st.DataObject) -> None:
        """A rerun of the original, taking what its fold stored for some steps."""
        original = self.runs[ORIGINAL].wf
        stored = [s for s in original.steps if s.entry_key is not None]
        taken = data.draw(st.lists(st.sampled_from(stored), unique=True) if stored else st.just([]))
        bad = data.draw(st.integers(0, 3)) == 0  # now and then: a reuse naming no step
        reuse = {s.name: s.entry_key for s in taken if s.entry_key is not None}
        if bad:
            reuse["deploy"] = "entry-nowhere"
        spec = replace_spec(SPEC, reuse)
        rid = f"wf-rerun-{len(self.runs)}"
        submitted = WorkflowSubmitted(
            workflow_id=rid, spec=spec, principal="me",
            origin=Origin(kind="rerun", rerun_of=ORIGINAL),
        )  # fmt: skip
        blob = pickle.dumps(self.runs[ORIGINAL].wf)
        wf, problems = new_workflow(submitted)
        assert pickle.dumps(self.runs[ORIGINAL].wf) == blob
        if bad:
            assert wf.state == "rejected"
            assert "reuse names unknown step 'deploy'" in problems
            assert wf.steps == ()
        else:
            assert (wf.state, problems) == ("accepted", [])
        self.runs[rid] = Run(rid, spec, wf, rerun_of=ORIGINAL)

    # -- the distributor -----------------------------------------------------------------------

    def _run(self, index: int) -> Run:
        runs = list(self.runs.values())
        return runs[index % len(runs)]

    @rule(which=st.integers(0, 5), what=st.integers(0, 7), hold=st.booleans())
    def distributor(self, which: int, what: int, hold: bool) -> None:
        """It holds the workflow back (queued), sends it to a pool (requested), or
        cancels it before any executor took it."""
        if what == 0:
            self.cancel_before_start(which, hold)
        elif what < 4:
            self.queue(which, hold)
        else:
            self.request(which, hold)

    def queue(self, which: int, hold: bool) -> None:
        run = self._run(which)
        if run.finished:
            return
        if run.current is None:
            run.attempts.append(Attempt(1, "ex1"))
        current = run.current
        assert current is not None
        if current.started:
            return
        event = WorkflowQueued(workflow_id=run.id, reason="no executor", attempt=current.number)
        self.emit(run, event, hold)

    def request(self, which: int, hold: bool) -> None:
        run = self._run(which)
        if run.finished:
            return
        if run.current is None:
            run.attempts.append(Attempt(1, "ex1"))
        current = run.current
        assert current is not None
        if current.requested:
            return
        current.requested = True
        event = WorkflowRequested(
            workflow_id=run.id, spec=run.spec, pool="default", attempt=current.number
        )
        self.emit(run, event, hold)

    @rule(which=st.integers(0, 5), hold=st.booleans(), slow=st.booleans())
    def executor_lost(self, which: int, hold: bool, slow: bool) -> None:
        """The distributor gives up on the executor and resends: a new attempt. The old
        executor is dead, or (``slow``) only slow: it may still send its events."""
        run = self._run(which)
        current = run.current
        if run.finished or len(run.attempts) >= 4:
            return
        if current is None:
            current = Attempt(0, "ex0", lost=True)  # so that this is attempt 1
        elif not current.started:
            return
        current.lost = not slow
        new = Attempt(current.number + 1, f"ex{current.number + 1}", requested=True)
        run.attempts.append(new)
        event = WorkflowRequested(
            workflow_id=run.id, spec=run.spec, pool="default", attempt=new.number
        )
        self.emit(run, event, hold)

    def cancel_before_start(self, which: int, hold: bool) -> None:
        run = self._run(which)
        current = run.current
        if run.finished or current is None or current.started:
            return
        run.finished = True
        event = WorkflowCancelled(
            workflow_id=run.id, reason="cancelled by bob", cancelled_by="bob",
            attempt=current.number,
        )  # fmt: skip
        self.emit(run, event, hold)

    # -- the executors -----------------------------------------------------------------------

    def start(self, which: int, hold: bool) -> None:
        run = self._run(which)
        current = run.current
        if current is None or not current.requested or current.started or run.finished:
            return
        current.started = True
        event = WorkflowStarted(
            workflow_id=run.id, executor_id=current.executor, attempt=current.number
        )
        self.emit(run, event, hold)

    def _attempt(self, run: Run, index: int, hold: bool = False) -> Attempt | None:
        """A live executor: the current attempt's, or a slow one of an older attempt. When
        there is none, the distributor sends the workflow and an executor starts it."""
        which = list(self.runs).index(run.id)
        if not run.finished and not any(a.live for a in run.attempts):
            if run.current is None or run.current.lost:
                self.executor_lost(which, hold, slow=False)
            self.request(which, hold)
        self.start(which, hold)  # a sent attempt gets its executor (the old one may be slow)
        return _pick([a for a in run.attempts if a.live], index)

    @rule(
        which=st.integers(0, 5), attempt=st.integers(0, 3), end=st.integers(0, 15),
        moves=st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 9), st.booleans()),  # step, what, held
            min_size=1, max_size=7,
        ),
        timed_out=st.booleans(), source=st.sampled_from(["cache", "resumed", "rerun"]),
    )  # fmt: skip
    def executor(
        self, which: int, attempt: int, end: int, moves: list[tuple[int, int, bool]],
        timed_out: bool, source: str,
    ) -> None:  # fmt: skip
        """What an executor does (started first, if none is): its steps start, retry, end
        (or end without a start); or it ends the workflow (``end`` 0 to 2)."""
        run = self._run(which)
        at = self._attempt(run, attempt, moves[0][2])
        if at is None:
            return
        if end == 0:
            self._complete(run, at, [hold for _, _, hold in moves])
            return
        if end in (1, 2):
            self._end_badly(run, at, moves[0][2], cancelled=end == 2)
            return
        for index, what, hold in moves[:4]:
            open_steps = [s for s in STEPS if at.steps[s] in (_P, _R)]
            if not open_steps:
                return
            step = open_steps[index % len(open_steps)]
            kind = (PENDING_MOVES if at.steps[step] == _P else RUNNING_MOVES)[what]
            event = self._step_event(run, at, step, kind, timed_out, source)
            assert event is not None
            self.emit(run, event, hold)

    def _step_event(
        self, run: Run, at: Attempt, step: str, kind: str, timed_out: bool, source: str
    ) -> StepEvent | None:
        state = at.steps[step]
        common = {"workflow_id": run.id, "step": step, "attempt": at.number}
        if kind == "start" and state == _P:
            at.steps[step], at.tries[step] = _R, 1
            return StepStarted(**common)  # type: ignore[arg-type]
        if kind == "retry" and state == _R:
            at.tries[step] += 1
            return StepRetrying(
                **common, try_number=at.tries[step] - 1, exit_code=1, error="exit 1",  # type: ignore[arg-type]
                delay_s=0.1,
            )  # fmt: skip
        if kind == "complete" and state == _R:
            at.steps[step] = "succeeded"
            return StepCompleted(
                **common, tries=at.tries[step], runner="local",  # type: ignore[arg-type]
                entry_key=f"entry-{run.id}-{step}-{at.number}",
                summary={"step": step},
            )  # fmt: skip
        if kind == "fail" and state in (_P, _R):  # pending: it could not even be spawned
            at.steps[step] = "timed_out" if timed_out and state == _R else "failed"
            return StepFailed(
                **common, exit_code=None if state == _P else 1, error="boom",  # type: ignore[arg-type]
                tries=max(at.tries[step], 1), timed_out=timed_out and state == _R,
                runner=None if state == _P else "local",
            )  # fmt: skip
        if kind == "cached" and state == _P:
            reused = run.spec.reuse.get(step)
            if reused is not None:  # a rerun takes what it reuses, nothing else
                source = "rerun"
            elif source == "rerun" or (source == "resumed" and at.number == 1):
                source = "cache"
            at.steps[step] = "cached"
            return StepCached(
                **common, cache_key=f"key-{step}", source=source,  # type: ignore[arg-type]
                from_workflow_id=(run.rerun_of or "?") if source == "rerun" else "wf-older",
                from_attempt=at.number - 1 if source == "resumed" else 1,
                entry_key=reused or f"entry-cache-{step}",
            )  # fmt: skip
        if kind == "skip" and state == _P:
            at.steps[step] = "skipped"
            return StepSkipped(**common, reason="needs lint, which failed")  # type: ignore[arg-type]
        return None

    def _complete(self, run: Run, at: Attempt, holds: list[bool]) -> None:
        """The executor runs what is left and reports every step succeeded."""
        for step in STEPS:
            if at.steps[step] not in ("succeeded", "cached") and at.steps[step] not in (_P, _R):
                return  # a step failed or was skipped: this attempt cannot succeed
        flags = iter(holds + [False] * 7)
        for step in STEPS:
            for kind in ("start", "complete"):
                event = self._step_event(run, at, step, kind, False, "cache")
                if event is not None:
                    self.emit(run, event, next(flags))
        at.ended = run.finished = True
        end = WorkflowCompleted(workflow_id=run.id, executor_id=at.executor, attempt=at.number)
        self.emit(run, end, next(flags))

    def _end_badly(self, run: Run, at: Attempt, hold: bool, cancelled: bool) -> None:
        """The executor fails (a step failed, or outside any step) or is cancelled; it
        sends no more step events."""
        at.ended = run.finished = True
        event: Delivered
        if cancelled:
            event = WorkflowCancelled(
                workflow_id=run.id, executor_id=at.executor, reason="cancelled by bob",
                cancelled_by="bob", attempt=at.number,
            )  # fmt: skip
        else:
            event = WorkflowFailed(
                workflow_id=run.id, executor_id=at.executor, reason="executor error",
                attempt=at.number,
            )  # fmt: skip
        self.emit(run, event, hold)

    # -- the bus: late deliveries and duplicates -----------------------------------------------

    @rule(which=st.integers(0, 5), index=st.integers(0, 30))
    def deliver_late(self, which: int, index: int) -> None:
        run = self._run(which)
        if run.held:
            self.deliver(run, run.held.pop(index % len(run.held)))

    @rule(which=st.integers(0, 5), index=st.integers(0, 60))
    def duplicate(self, which: int, index: int) -> None:
        run = self._run(which)
        if run.delivered:
            self.deliver(run, run.delivered[index % len(run.delivered)])

    @rule(which=st.integers(0, 5), step=st.sampled_from(["deploy", "LINT"]))
    def unknown_step(self, which: int, step: str) -> None:
        run = self._run(which)
        before = run.wf
        outcome = fold(before, StepStarted(workflow_id=run.id, step=step))
        assert isinstance(outcome, Illegal)
        assert run.wf is before

    # -- what holds between deliveries -----------------------------------------------------

    def teardown(self) -> None:
        # The bus delivers what it held back at last; then every run is quiescent.
        for run in self.runs.values():
            while run.held:
                self.deliver(run, run.held.pop(0))
        self.check_all()
        # Shown by pytest --hypothesis-show-statistics: how deep the runs went.
        record(f"deliveries: {self.deliveries // 10 * 10}+")
        record(f"attempts: {max((len(r.attempts) for r in self.runs.values()), default=0)}")

    def check_all(self) -> None:
        self.one_end_that_never_changes()
        self.an_ended_workflow_has_only_ended_steps()
        self.a_success_shows_successful_steps()
        self.steps_are_consistent()
        self.a_rerun_leaves_the_original_alone()

    @invariant()
    def one_end_that_never_changes(self) -> None:
        for run in self.runs.values():
            wf = run.wf
            if wf.state == "rejected":
                assert wf.steps == ()
                assert run.first_end is None
                continue
            if run.first_end is None:
                assert wf.state in _ACTIVE
                assert not any(s.closed_by_workflow for s in wf.steps)
            else:
                assert wf.state == run.first_end
                assert wf.finished_at is not None

    @invariant()
    def an_ended_workflow_has_only_ended_steps(self) -> None:
        """Closing out leaves no step pending or running (``_close_out``)."""
        for run in self.runs.values():
            if run.wf.state in TERMINAL_WORKFLOW_STATES:
                unfinished = [s for s in run.wf.steps if s.state not in FINAL_STEP_STATES]
                assert unfinished == [], unfinished

    @invariant()
    def a_success_shows_successful_steps(self) -> None:
        """Once every event produced was delivered, a succeeded workflow shows each step
        succeeded or cached: the attempt that won sent an end for every step."""
        for run in self.runs.values():
            if run.wf.state != "succeeded" or run.held:
                continue
            for s in run.wf.steps:
                if s.state in ("succeeded", "cached"):
                    continue
                raise AssertionError(f"succeeded in attempt {run.wf.attempt}, yet {s}")

    @invariant()
    def steps_are_consistent(self) -> None:
        for run in self.runs.values():
            for s in run.wf.steps:
                if s.state == _R:
                    assert s.tries >= 1  # running: it started, or a try of it failed
                if s.state == _P:
                    assert (s.tries, s.finished_at, s.closed_by_workflow) == (0, None, False)
                if s.state == "succeeded" and not s.closed_by_workflow:
                    assert s.entry_key is not None  # only a StepCompleted makes it so
                if s.state == "cached":
                    assert s.entry_key is not None
                    reused = run.spec.reuse.get(s.name)
                    if reused is not None:  # a rerun's step takes the entry its spec names
                        assert s.entry_key == reused

    @invariant()
    def a_rerun_leaves_the_original_alone(self) -> None:
        original = self.runs[ORIGINAL]
        delivered = [e for r in self.runs.values() for e in r.delivered if r is not original]
        assert all(e.workflow_id != ORIGINAL for e in delivered)
        assert all(e.workflow_id == ORIGINAL for e in original.delivered)


def replace_spec(spec: WorkflowSpec, reuse: dict[str, str]) -> WorkflowSpec:
    return WorkflowSpec(
        name=spec.name, steps=spec.steps, project=spec.project, requires=spec.requires,
        labels=spec.labels, reuse=reuse,
    )  # fmt: skip


WorkflowFold.TestCase.settings = settings(
    max_examples=200,
    database=None,  # nothing written to the work tree; a failure prints its own steps
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_workflow_fold = WorkflowFold.TestCase


def test_a_late_start_after_the_end_reopens_no_step() -> None:
    wid = "wf1"
    wf, _ = new_workflow(WorkflowSubmitted(workflow_id=wid, spec=SPEC, principal="me"))
    for event in (
        WorkflowRequested(workflow_id=wid, spec=SPEC, pool="default", attempt=1),
        WorkflowStarted(workflow_id=wid, executor_id="ex1", attempt=1),
        StepCompleted(workflow_id=wid, step="lint", attempt=1),
        WorkflowRequested(workflow_id=wid, spec=SPEC, pool="default", attempt=2),  # ex1 lost
        WorkflowStarted(workflow_id=wid, executor_id="ex2", attempt=2),
        # ex2 runs lint again and is cancelled; its StepStarted arrives after the cancel.
        WorkflowCancelled(
            workflow_id=wid, executor_id="ex2", reason="bob", cancelled_by="bob", attempt=2
        ),
        StepStarted(workflow_id=wid, step="lint", attempt=2),
    ):
        outcome = fold(wf, event)
        if isinstance(outcome, Applied):
            wf = outcome.workflow
    assert wf.state == "cancelled"
    assert [s.state for s in wf.steps if s.state not in FINAL_STEP_STATES] == []


def test_a_newer_attempts_step_end_does_not_outlive_an_older_win() -> None:
    wid = "wf1"
    wf, _ = new_workflow(WorkflowSubmitted(workflow_id=wid, spec=SPEC, principal="me"))
    lint_done = StepCompleted(workflow_id=wid, step="lint", attempt=1)
    for event in (
        WorkflowRequested(workflow_id=wid, spec=SPEC, pool="default", attempt=1),
        WorkflowStarted(workflow_id=wid, executor_id="ex1", attempt=1),
        StepStarted(workflow_id=wid, step="lint", attempt=1),
        lint_done,
        WorkflowRequested(workflow_id=wid, spec=SPEC, pool="default", attempt=2),  # ex1 slow
        WorkflowStarted(workflow_id=wid, executor_id="ex2", attempt=2),
        StepStarted(workflow_id=wid, step="lint", attempt=2),
        StepFailed(workflow_id=wid, step="lint", attempt=2, exit_code=1, error="flaky"),
        # ex1 was only slow: it finishes every step and its result wins.
        *(StepCompleted(workflow_id=wid, step=s, attempt=1) for s in ("test", "pkg")),
        WorkflowCompleted(workflow_id=wid, executor_id="ex1", attempt=1),
        lint_done,  # redelivered: it refines what closing out wrote
    ):
        outcome = fold(wf, event)
        if isinstance(outcome, Applied):
            wf = outcome.workflow
    assert (wf.state, wf.attempt) == ("succeeded", 1)
    assert [(s.name, s.state) for s in wf.steps if s.state != "succeeded"] == []
