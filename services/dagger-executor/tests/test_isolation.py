"""A local step, run as the platform runs it, tries to reach what it must not: a private
key of the platform, another step's work directory, the services' environment, and (in
bubblewrap) the network. Each attempt fails, and the step's output says so."""

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from aiop.contracts import StepSpec
from aiop.dagger_executor.adapters.isolation import CannotIsolate, Isolation, choose
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import StepResult
from aiop.devstack import until

ROOT = os.geteuid() == 0
BWRAP = shutil.which("bwrap")
needs_root = pytest.mark.skipif(not ROOT, reason="steps get uids of their own only as root")
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason="bubblewrap (bwrap) is not installed")


async def run(
    runner: LocalRunner, workdir: Path, *argv: str, **step: object
) -> tuple[StepResult, str]:
    lines: list[str] = []

    async def out(stream: str, text: str) -> None:
        lines.append(text)

    spec = StepSpec(name=workdir.name, run=list(argv), **step)  # type: ignore[arg-type]
    result = await runner.run(spec, workdir, {"AIOP_STEP": workdir.name}, {}, out)
    return result, "".join(lines)


def work(tmp_path: Path, step: str) -> Path:
    return tmp_path / "work" / "wf1" / "1" / step


@pytest.fixture
def private_key(tmp_path: Path) -> Path:
    """A file as the platform keeps its keys: 0600, in a 0700 folder."""
    folder = tmp_path / "state" / "auth"
    folder.mkdir(parents=True, mode=0o700)
    key = folder / "signing-key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    return key


@needs_root
async def test_a_step_cannot_read_the_platforms_keys(tmp_path: Path, private_key: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    result, output = await run(runner, work(tmp_path, "thief"), "cat", str(private_key))
    assert not result.succeeded
    assert "Permission denied" in output
    assert "PRIVATE KEY" not in output


@needs_root
async def test_a_step_cannot_read_another_steps_work(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    written = asyncio.Event()
    secret = work(tmp_path, "owner") / "result.txt"

    async def owner() -> StepResult:
        script = f"echo secret > {secret}; sleep 3"
        task = asyncio.create_task(run(runner, work(tmp_path, "owner"), "sh", "-c", script))
        await until(secret.exists, 10, "the owner's result written")
        written.set()
        return (await task)[0]

    async def reader() -> tuple[StepResult, str]:
        await written.wait()
        return await run(runner, work(tmp_path, "reader"), "cat", str(secret))

    _, (result, output) = await asyncio.gather(owner(), reader())
    assert not result.succeeded
    assert "Permission denied" in output
    # Once ended, its folder is the executor's: a later step given the same uid is shut out.
    result, output = await run(runner, work(tmp_path, "later"), "cat", str(secret))
    assert "Permission denied" in output


@needs_root
async def test_a_step_cannot_read_the_services_environment(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto", use_bwrap=False))
    environ = f"/proc/{os.getpid()}/environ"  # the executor's: every AIOP_SECRET_* value
    result, output = await run(runner, work(tmp_path, "snoop"), "cat", environ)
    assert not result.succeeded
    assert "Permission denied" in output


async def test_a_step_sees_only_the_environment_it_asked_for(tmp_path: Path) -> None:
    os.environ["AIOP_SECRET_DB_PASSWORD"] = "hunter2"  # the executor's, not the step's
    try:
        result, output = await run(
            LocalRunner(choose("auto")), work(tmp_path, "env"), "env", env={"MINE": "yes"}
        )
    finally:
        del os.environ["AIOP_SECRET_DB_PASSWORD"]
    assert result.succeeded, output
    names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
    assert "AIOP_SECRET_DB_PASSWORD" not in names
    assert "hunter2" not in output
    assert names <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "AIOP_STEP", "PWD",
                     "SHLVL", "_", "AIOP_STEP_RUN"}  # fmt: skip


@needs_bwrap
async def test_in_bubblewrap_a_step_has_no_network_unless_it_asks(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        runner = LocalRunner(choose("auto"))
        result, output = await run(runner, work(tmp_path, "offline"), "python3", "-c", probe)
        assert not result.succeeded
        assert "unreachable" in output or "refused" in output, output
        result, output = await run(
            runner, work(tmp_path, "online"), "python3", "-c", probe, network=True
        )
        assert result.succeeded, output


@needs_bwrap
async def test_in_bubblewrap_the_services_processes_are_not_even_visible(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto"))
    result, output = await run(runner, work(tmp_path, "ps"), "ls", f"/proc/{os.getpid()}")
    assert not result.succeeded
    assert "No such file or directory" in output


def test_required_isolation_refuses_an_executor_that_has_none(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shutil, "which", lambda name, **_: None)
    with pytest.raises(CannotIsolate, match="cannot be separated"):
        choose("required")
    assert "NOT separated" in choose("auto").summary()
    assert choose("off") == Isolation(separate_uids=False)


@needs_root
async def test_a_step_under_its_own_uid_runs_as_that_uid_with_no_groups(tmp_path: Path) -> None:
    runner = LocalRunner(choose("auto"))
    result, output = await run(runner, work(tmp_path, "ids"), "id")
    assert result.succeeded, output
    ids = dict(re.findall(r"(uid|gid|groups)=(\d+)", output))
    assert ids["uid"] != "0"
    assert ids["gid"] == ids["uid"]
    assert "groups=0" not in output  # the executor's groups are not the step's
    missing, _ = await run(runner, work(tmp_path, "nobin"), "no-such-binary-aiop")
    assert missing.error == "cannot start 'no-such-binary-aiop': no such executable"
