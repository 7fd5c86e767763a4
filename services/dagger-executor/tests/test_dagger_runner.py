"""The Dagger runner against a live engine; skipped where none is reachable."""

from pathlib import Path

import pytest

from aiop.contracts import StepSpec
from aiop.dagger_executor.adapters.dagger_runner import DaggerRunner
from aiop.dagger_executor.adapters.engine import detect_engine

ENGINE = detect_engine()
pytestmark = [
    pytest.mark.dagger,
    pytest.mark.skipif(not ENGINE.available, reason=f"no Dagger engine: {ENGINE.reason}"),
]


async def test_step_runs_in_its_image_with_env_and_secret(tmp_path: Path) -> None:
    chunks: list[tuple[str, str]] = []

    async def sink(stream: str, text: str) -> None:
        chunks.append((stream, text))

    runner = DaggerRunner()
    try:
        step = StepSpec(
            name="s", image="alpine:3", run=["sh", "-c", 'echo "$GREETING $TOKEN"; exit 4']
        )
        result = await runner.run(step, tmp_path, {"GREETING": "hello"}, {"TOKEN": "tok"}, sink)
    finally:
        await runner.close()
    assert result.exit_code == 4
    assert any("hello" in text for _, text in chunks)
