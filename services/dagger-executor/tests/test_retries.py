"""Retries with backoff and timeouts that kill a step's whole process tree, through the
real local runner."""

import os
import sys
import time
from pathlib import Path

import pytest

from aiop.contracts import (
    RetryPolicy,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepRetrying,
    StepSpec,
    StepStarted,
    WorkflowCompleted,
    WorkflowFailed,
)
from aiop.dagger_executor.domain.retry import retry_delay

from .conftest import RunSteps, alive

PY = sys.executable

# Fails until the file named by argv[1] counts argv[2] tries, then succeeds; each try says
# which one it is (the work directory is emptied between tries, so the count lives outside).
FLAKY = """
import os, sys
path, succeed_on = sys.argv[1], int(sys.argv[2])
n = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(n))
print("try", n, "AIOP_TRY", os.environ["AIOP_TRY"], "leftover", os.path.exists("left"), flush=True)
open("left", "w").write("x")
sys.exit(0 if n >= succeed_on else 7)
"""


def test_the_delay_doubles_from_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.5, max_backoff=3.0, jitter=0.0)
    assert [retry_delay(policy, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retry_delay(policy, 5000) == 3.0  # no overflow, however far it went


def test_jitter_only_shortens_the_delay() -> None:
    policy = RetryPolicy(backoff=2.0, max_backoff=2.0, jitter=0.25)
    assert retry_delay(policy, 1, rand=lambda: 0.0) == 2.0
    assert retry_delay(policy, 1, rand=lambda: 1.0) == 1.5
    assert retry_delay(policy, 3, rand=lambda: 0.5) == 1.75


async def test_a_flaky_step_is_retried_with_backoff_until_it_succeeds(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    policy = RetryPolicy(attempts=4, backoff=0.2, max_backoff=5.0, jitter=0.0)
    count = tmp_path / "count"
    step = StepSpec(name="flaky", run=[PY, "-c", FLAKY, str(count), "3"], retries=policy)
    sink = await run_steps(step)

    steps = [e for e in sink.events if not isinstance(e, StepOutputAppended)]
    kinds = [type(e).__name__ for e in steps]
    assert kinds == ["StepStarted", "StepRetrying", "StepRetrying", "StepCompleted",
                     "WorkflowCompleted"]  # fmt: skip
    first, second = sink.of(StepRetrying)
    assert (first.try_number, first.exit_code, first.delay_s) == (1, 7, 0.2)
    assert (second.try_number, second.exit_code, second.delay_s) == (2, 7, 0.4)
    assert "exited with code 7" in first.error
    assert "try 1 AIOP_TRY 1" in first.output_tail
    assert "try 2 AIOP_TRY 2" in second.output_tail
    assert "try 1" not in second.output_tail  # each try has a tail of its own
    (done,) = sink.of(StepCompleted)
    assert done.tries == 3
    # The waits were kept: from the first failure to the end took both delays at least.
    assert (done.occurred_at - first.occurred_at).total_seconds() >= 0.2 + 0.4
    # Every try started from an empty work directory.
    assert "leftover True" not in sink.output("flaky")
    tries = {e.try_number for e in sink.of(StepOutputAppended) if "AIOP_TRY" in e.text}
    assert tries == {1, 2, 3}
    assert "[aiop] try 2 of 4 failed: exited with code 7; next try in 0.40s" in sink.output("flaky")


async def test_a_step_that_keeps_failing_ends_failed_after_its_last_try(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    policy = RetryPolicy(attempts=2, backoff=0.0, max_backoff=0.0, jitter=0.0)
    step = StepSpec(name="bad", run=[PY, "-c", FLAKY, str(tmp_path / "n"), "99"], retries=policy)
    sink = await run_steps(step)
    assert len(sink.of(StepRetrying)) == 1
    (failed,) = sink.of(StepFailed)
    assert (failed.tries, failed.exit_code, failed.timed_out) == (2, 7, False)
    assert "try 2" in failed.output_tail
    assert "try 1" not in failed.output_tail
    assert sink.of(WorkflowFailed)


async def test_without_a_policy_a_step_has_one_try(tmp_path: Path, run_steps: RunSteps) -> None:
    step = StepSpec(name="once", run=[PY, "-c", FLAKY, str(tmp_path / "n"), "2"])
    sink = await run_steps(step)
    assert sink.of(StepRetrying) == []
    (failed,) = sink.of(StepFailed)
    assert failed.tries == 1
    assert (tmp_path / "n").read_text() == "1"


# Starts a grandchild that leaves the step's session and process group (as a daemon
# would), writes its pid where the test can read it, then hangs.
ESCAPES = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
print("started", child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
async def test_a_timeout_kills_the_whole_process_tree_and_ends_timed_out(
    tmp_path: Path, run_steps: RunSteps
) -> None:
    pid_file = tmp_path / "grandchild"
    step = StepSpec(name="hang", run=[PY, "-c", ESCAPES, str(pid_file)], timeout=1.0)
    started = time.monotonic()
    sink = await run_steps(step)
    assert time.monotonic() - started < 10
    grandchild = int(pid_file.read_text())
    try:
        assert not alive(grandchild), "the grandchild in its own session outlived the timeout"
    finally:
        if alive(grandchild):
            os.kill(grandchild, 9)
    (failed,) = sink.of(StepFailed)
    assert failed.timed_out
    assert failed.exit_code is None
    assert "timed out after 1s; the step was killed" in failed.error
    assert "started" in failed.output_tail


async def test_a_try_that_timed_out_is_retried(tmp_path: Path, run_steps: RunSteps) -> None:
    script = "import sys, time; print('try', flush=True); time.sleep(60)"
    policy = RetryPolicy(attempts=2, backoff=0.05, jitter=0.0)
    step = StepSpec(name="slow", run=[PY, "-c", script], timeout=0.3, retries=policy)
    sink = await run_steps(step)
    (retrying,) = sink.of(StepRetrying)
    assert retrying.timed_out
    assert retrying.exit_code is None
    (failed,) = sink.of(StepFailed)
    assert failed.timed_out
    assert failed.tries == 2
    assert [e.step for e in sink.of(StepStarted)] == [
        "slow"
    ]  # one start: retries are not new steps
    assert not sink.of(WorkflowCompleted)
