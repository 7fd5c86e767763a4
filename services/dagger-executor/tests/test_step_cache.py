"""Cache keys and output archives, without a server."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from aiop.contracts import RegistryAuth, RetryPolicy, StepSpec
from aiop.dagger_executor.adapters.artifacts import MissingOutput, pack, unpack
from aiop.dagger_executor.domain.step_key import result_digest, step_key

STEP = StepSpec(name="s", run=["make"], image="python:3.12", env={"A": "1"}, secrets=["tok"],
                needs=["up"], outputs=["dist"])  # fmt: skip
UP = {"up": "r1"}


def key(step: StepSpec = STEP, needs: dict[str, str] = UP, project: str = "p") -> str:
    return step_key(project, step, needs)


def changed(**fields: object) -> StepSpec:
    return StepSpec(**{**{f: getattr(STEP, f) for f in STEP.__struct_fields__}, **fields})  # type: ignore[arg-type]


def test_the_key_follows_what_determines_the_result() -> None:
    base = key()
    assert key() == base  # stable
    for what in (
        changed(image="python:3.13"), changed(run=["make", "all"]), changed(env={"A": "2"}),
        changed(secrets=["other"]), changed(outputs=["build"]), changed(network=True),
        changed(registry_auth=RegistryAuth(address="ghcr.io", username="me", secret="tok")),
    ):  # fmt: skip
        assert key(what) != base, what
    assert key(needs={"up": "r2"}) != base  # an upstream result changed: so does this
    assert key(project="q") != base  # projects never share results
    # How it runs, not what it produces: the same key.
    for same in (changed(timeout=5.0), changed(retries=RetryPolicy(attempts=3)),
                 changed(caches={"pip": "/root/.cache/pip"}), changed(name="renamed")):  # fmt: skip
        assert key(same) == base, same
    assert result_digest(base, "d1") != result_digest(base, "d2")


def test_an_archive_depends_only_on_the_outputs_content(tmp_path: Path) -> None:
    for run in ("one", "two"):
        work = tmp_path / run
        (work / "dist" / "sub").mkdir(parents=True)
        (work / "dist" / "sub" / "a.txt").write_text("same")
        (work / "dist" / "b.bin").write_bytes(b"\x00\x01")
        os.utime(work / "dist" / "b.bin", (1, 1 if run == "one" else 999_999))
    assert pack(tmp_path / "one", ["dist"]) == pack(tmp_path / "two", ["dist"])
    (tmp_path / "two" / "dist" / "b.bin").write_bytes(b"\x00\x02")
    assert pack(tmp_path / "one", ["dist"]) != pack(tmp_path / "two", ["dist"])
    unpack(pack(tmp_path / "one", ["dist"]), tmp_path / "restored")
    assert (tmp_path / "restored" / "dist" / "sub" / "a.txt").read_text() == "same"


def test_a_missing_output_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingOutput, match="dist"):
        pack(tmp_path, ["dist"])


def test_an_archive_cannot_write_outside_its_destination(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):
        unpack(buffer.getvalue(), tmp_path / "dest")
    assert not (tmp_path / "escaped").exists()
