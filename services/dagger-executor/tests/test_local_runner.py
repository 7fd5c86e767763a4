"""Runs through the local runner with real subprocesses; events are collected in memory."""

import sys
import time
import uuid
from pathlib import Path

from aiop.contracts import (
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepSkipped,
    StepSpec,
    StepStarted,
    WorkflowCompleted,
    WorkflowFailed,
)
from aiop.dagger_executor.step_slots import StepSlots

from .conftest import RunSteps

PY = sys.executable


async def test_success_streams_output_and_notes_the_image(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    step = StepSpec(name="hello", image="alpine:3", run=[PY, "-c", "print('hi from step')"])
    sink = await run_steps(step)
    out = sink.output("hello")
    assert "[local runner] image alpine:3 recorded, not pulled" in out
    assert "hi from step" in out
    assert [type(e).__name__ for e in sink.of(WorkflowCompleted)] == ["WorkflowCompleted"]
    assert all(getattr(e, "attempt", 2) == 2 for e in sink.events)
    assert (tmp_path / "wf1" / "2" / "hello").is_dir()


async def test_nonzero_exit_fails_with_code_and_tail(tmp_path: Path, run_steps: RunSteps) -> None:
    script = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)"
    sink = await run_steps(StepSpec(name="bad", run=[PY, "-c", script]),
                     StepSpec(name="after", run=[PY, "-c", "pass"], needs=["bad"]))  # fmt: skip
    (failed,) = sink.of(StepFailed)
    assert failed.exit_code == 3
    assert "exited with code 3" in failed.error
    tail = failed.output_tail.splitlines()
    assert tail[-1] == "line 99"
    assert len(tail) <= 40
    (skipped,) = sink.of(StepSkipped)
    assert skipped.step == "after"
    (wf_failed,) = sink.of(WorkflowFailed)
    assert wf_failed.failed_step == "bad"
    assert "exited with code 3" in wf_failed.reason


async def test_timeout_kills_the_step(tmp_path: Path, run_steps: RunSteps) -> None:
    step = StepSpec(
        name="slow",
        run=[PY, "-c", "import time; print('start', flush=True); time.sleep(60)"],
        timeout=0.5,
    )
    started = time.monotonic()
    sink = await run_steps(step)
    assert time.monotonic() - started < 10
    (failed,) = sink.of(StepFailed)
    assert failed.exit_code is None
    assert "timed out after 0.5s" in failed.error
    assert "start" in failed.output_tail


async def test_missing_binary_fails_clearly(tmp_path: Path, run_steps: RunSteps) -> None:
    sink = await run_steps(StepSpec(name="nobin", run=["no-such-binary-aiop"]))
    (failed,) = sink.of(StepFailed)
    assert failed.exit_code is None
    assert failed.error == "cannot start 'no-such-binary-aiop': no such executable"
    assert sink.of(WorkflowFailed)


async def test_secrets_reach_the_step_but_never_its_events(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    secret = "s3cr3t-value-xyz"
    script = (
        "import os, base64, sys\n"
        "v = os.environ['api_token']\n"
        "print(v, base64.b64encode(v.encode()).decode(), v.encode().hex())\n"
        "sys.exit('bad token ' + v)"
    )
    step = StepSpec(name="s", run=[PY, "-c", script], secrets=["api_token"])
    sink = await run_steps(step, environ={"AIOP_SECRET_API_TOKEN": secret})
    (failed,) = sink.of(StepFailed)
    everything = repr(sink.events)
    assert secret not in everything
    assert secret.encode().hex() not in everything
    assert "***" in failed.output_tail


async def test_a_missing_secret_fails_the_step_naming_the_variable(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    sink = await run_steps(StepSpec(name="s", run=[PY, "-c", "pass"], secrets=["db"]))
    (failed,) = sink.of(StepFailed)
    assert "AIOP_SECRET_DB" in failed.error


async def test_steps_follow_needs_and_independent_ones_overlap(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    sleep = [PY, "-c", "import time; time.sleep(0.3)"]
    sink = await run_steps(
        StepSpec(name="a", run=sleep),
        StepSpec(name="b", run=sleep),
        StepSpec(name="c", run=[PY, "-c", "pass"], needs=["a", "b"]),
    )
    kinds = [(type(e).__name__, getattr(e, "step", "")) for e in sink.events
             if not isinstance(e, StepOutputAppended)]  # fmt: skip
    # a and b both started before either finished: they ran together.
    assert set(kinds[:2]) == {("StepStarted", "a"), ("StepStarted", "b")}
    done = [e.step for e in sink.of(StepCompleted)]
    assert sorted(done[:2]) == ["a", "b"]
    assert done[2] == "c"
    assert sink.of(WorkflowCompleted)


async def test_a_cache_volume_outlives_the_step_that_filled_it(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    name = f"c{uuid.uuid4().hex[:12]}"  # the runner's cache folders outlive this test
    fill = StepSpec(name="fill", run=[PY, "-c", "open('.cache/seen', 'w').write('warm')"],
                    caches={name: ".cache"})  # fmt: skip
    read = [
        PY,
        "-c",
        f"import os; print(open(os.environ['AIOP_CACHE_{name.upper()}'] + '/seen').read())",
    ]
    use = StepSpec(name="use", run=read, caches={name: "/root/.cache/x"}, needs=["fill"])
    sink = await run_steps(fill, use)
    assert sink.of(WorkflowCompleted), sink.events
    assert "warm" in sink.output("use")


async def test_an_executor_runs_no_more_steps_at_once_than_its_capacity(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    sleep = [PY, "-c", "import time; time.sleep(0.2)"]
    slots = StepSlots(1)
    sink = await run_steps(StepSpec(name="a", run=sleep), StepSpec(name="b", run=sleep),
                           slots=slots)  # fmt: skip
    kinds = [(type(e).__name__, e.step) for e in sink.events  # type: ignore[attr-defined]
             if isinstance(e, StepStarted | StepCompleted)]  # fmt: skip
    # Independent steps, but one slot: the second starts only once the first has ended.
    assert [k for k, _ in kinds] == ["StepStarted", "StepCompleted"] * 2
    assert slots.load == 0
