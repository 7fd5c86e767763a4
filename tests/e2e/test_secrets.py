"""A secret end to end, as a user keeps one: `aiop secrets set` from stdin, a workflow whose
step uses it and prints it every way it can, and the value nowhere but in the step
(docs/security.md, "Secrets")."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiop.contracts.subjects import KV_SECRETS
from aiop.devstack import until_sync
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

VALUE = "e2e-canary-Kx93-a1b2c3"
WORKFLOW = """\
name: uses-a-secret
steps:
  - name: use
    run:
      - python3
      - -c
      - |
        import base64, os, sys, time
        v = os.environ["API_TOKEN"]
        assert v == "{value}", "the step got another value"
        print("raw", v, flush=True)
        print("b64", base64.b64encode(v.encode()).decode(), flush=True)
        print("hex", v.encode().hex(), flush=True)
        sys.stdout.write("split " + v[:9]); sys.stdout.flush(); time.sleep(0.6)
        print(v[9:], flush=True)
    secrets: [API_TOKEN]
"""


AFTER_RM = """\
name: after-rm
steps:
  - name: use
    run: [python3, -c, "print('never runs')"]
    secrets: [API_TOKEN]
"""


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex(), raw.hex().upper()]


def aiop(platform: Platform, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with ``stdin`` piped in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOP_")}
    return subprocess.run(
        [sys.executable, "-m", "aiop.cli", *args], input=stdin,
        cwd=platform.root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_secret_set_from_stdin_reaches_its_step_and_nothing_else(
    platform: Platform, tmp_path: Path
) -> None:
    stored = aiop(platform, "secrets", "set", "API_TOKEN", stdin=VALUE + "\n")
    assert stored.returncode == 0, stored.stderr
    assert VALUE not in stored.stdout + stored.stderr
    listed = aiop(platform, "secrets", "ls", "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["API_TOKEN"]
    assert VALUE not in listed.stdout

    (platform.root / "secret.yaml").write_text(WORKFLOW.format(value=VALUE))
    done = platform.aiop("submit", "secret.yaml", "--wait", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    workflow_id = json.loads(done.stdout)["workflow_id"]

    def logged() -> subprocess.CompletedProcess[str] | None:
        shown = platform.aiop("logs", workflow_id)
        return shown if "split" in shown.stdout else None

    logs = until_sync(logged, 30, "the step's output in `aiop logs`")
    assert "raw ***" in logs.stdout
    assert "split ***" in logs.stdout
    status = platform.aiop("status", workflow_id, "--json")
    shown = [stored.stdout, listed.stdout, done.stdout, logs.stdout, status.stdout]
    # Nor anything the platform wrote: its logs, its traces.
    state = platform.root / ".aiop"
    written = [
        p for folder in ("logs", "traces") for p in (state / folder).glob("*") if p.is_file()
    ]
    assert written
    for form in forms(VALUE):
        assert not any(form in text for text in shown), form
        assert not [p.name for p in written if form.encode() in p.read_bytes()], form

    rm = aiop(platform, "secrets", "rm", "API_TOKEN")
    assert rm.returncode == 0, rm.stderr
    (platform.root / "after-rm.yaml").write_text(AFTER_RM)
    failed = platform.aiop("submit", "after-rm.yaml", "--wait", "--json")
    assert failed.returncode == 1, failed.stdout
    (step,) = json.loads(failed.stdout)["steps"]
    assert "API_TOKEN" in step["error"]
    assert step["exit_code"] is None  # it never started


async def test_the_bus_holds_the_secret_sealed(platform: Platform) -> None:
    assert aiop(platform, "secrets", "set", "SEALED", stdin=VALUE).returncode == 0
    nc = await platform.connect()
    try:
        js = nc.jetstream()
        info = await js.stream_info(f"KV_{KV_SECRETS}")
        blob = b""
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                blob += (await js.get_msg(f"KV_{KV_SECRETS}", seq)).data or b""
            except Exception:
                continue
    finally:
        await nc.close()
    assert b"SEALED" in blob
    for form in forms(VALUE):
        assert form.encode() not in blob, form
