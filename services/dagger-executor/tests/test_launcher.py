"""The step launcher starts steps under uids of their own (as root only): the step keeps
no way back to root, a program that cannot start says why, and a launcher that stops ends
its running steps with an error and is started again for the next step. The work
directory of a finished run is removed."""

import asyncio
import os
import re
import signal
from pathlib import Path

from aiop.contracts import StepSpec, WorkflowRequested, WorkflowSpec
from aiop.dagger_executor.adapters.isolation import Isolation, choose
from aiop.dagger_executor.adapters.launcher import STOPPED
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.run import RunContext, WorkflowRun
from aiop.dagger_executor.work_janitor import WorkJanitor
from aiop.devstack import until

from .test_isolation import needs_root, run, work


@needs_root
async def test_a_launched_step_holds_no_trace_of_root(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    try:
        result, output = await run(
            runner, work(tmp_path, "ids"), "grep", "-E", "^(Uid|Gid|CapPrm)", "/proc/self/status"
        )
        assert result.succeeded, output
        fields = dict(re.findall(r"^(\w+):\s+(.*)$", output, re.MULTILINE))
        uids, gids = fields["Uid"].split(), fields["Gid"].split()
        assert len(set(uids)) == 1  # real, effective, saved, file system
        assert uids[0] != "0"
        assert set(gids) == {uids[0]}
        assert int(fields["CapPrm"], 16) == 0
        # Nothing of the launcher's is open in the step: only its stdin, stdout, stderr
        # (and the descriptor ``ls`` opens to read the folder).
        again, listing = await run(runner, work(tmp_path, "fds"), "ls", "/proc/self/fd")
        assert again.succeeded, listing
        assert sorted(int(fd) for fd in listing.split()) == [0, 1, 2, 3]
    finally:
        await runner.close()


@needs_root
async def test_a_step_that_cannot_start_says_why(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    try:
        script = tmp_path / "not-executable.sh"
        script.write_text("#!/bin/sh\necho hi\n")
        script.chmod(0o644)
        denied, _ = await run(runner, work(tmp_path, "denied"), str(script))
        assert denied.error == f"cannot start {str(script)!r}: permission denied"
        missing, _ = await run(runner, work(tmp_path, "missing"), "no-such-binary-aiop")
        assert missing.error == "cannot start 'no-such-binary-aiop': no such executable"
    finally:
        await runner.close()


@needs_root
async def test_a_launcher_that_stops_fails_its_steps_and_is_started_again(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    try:
        step = asyncio.create_task(run(runner, work(tmp_path, "long"), "sleep", "30"))
        await until(lambda: runner.launcher.running, what="the step handed to the launcher")
        first = runner.launcher.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        async with asyncio.timeout(10):
            result, _ = await step
        assert result.error == STOPPED
        after, output = await run(runner, work(tmp_path, "after"), "echo", "back")
        assert after.succeeded, output
        assert output == "back\n"
        assert runner.launcher.pid not in (None, first)
    finally:
        await runner.close()


async def test_a_finished_runs_work_directory_is_removed(tmp_path: Path) -> None:
    class Sink:
        async def publish(self, event: object) -> None:
            return None

    janitor = WorkJanitor(every_s=3600)  # only flush() sweeps, so the test decides when
    runner = LocalRunner(Isolation(separate_uids=False))
    ctx = RunContext("e1", runner, Sink(), tmp_path, {}, janitor=janitor)  # type: ignore[arg-type]
    spec = WorkflowSpec(name="w", steps=[StepSpec(name="s", run=["sh", "-c", "echo x > f"])])
    await WorkflowRun(WorkflowRequested(workflow_id="wf1", pool="p", spec=spec), ctx).run()
    assert (tmp_path / "wf1" / "1" / "s" / "f").read_text() == "x\n"  # kept until the sweep
    await janitor.flush()
    assert not (tmp_path / "wf1").exists()
    await runner.close()
