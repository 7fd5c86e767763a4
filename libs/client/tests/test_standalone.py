"""aiop-client installs on its own: into an empty virtual environment, with none of the
services or the contracts, and both the client and the agent SDK import there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.util, aiop.client, aiop.client.agent
from aiop.client import AsyncClient, Client
from aiop.client.agent import Agent
missing = [m for m in ("aiop.contracts", "aiop.servicekit", "msgspec", "nats")
           if importlib.util.find_spec(m) is not None]
assert not missing, f"installed with the client: {missing}"
print("ok")
"""


def test_the_client_installs_and_imports_without_the_platform(tmp_path: Path) -> None:
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV
    if found is None:
        pytest.skip("no uv to make the environment with (run the tests with `uv run`)")
    uv = [found]
    venv = tmp_path / "venv"
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [*uv, "pip", "install", "-q", "--python", str(python), str(CLIENT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    ran = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert ran.stdout.strip() == "ok", ran.stderr
