"""proto-schemas/: generated deterministically; check catches drift and breaking changes."""

import json
import shutil
from pathlib import Path

import pytest
from tools import schemas

from aiop.contracts.events import EVENT_TYPES

EVENT = "aiop.workflow.failed.v1"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repository root (not a git checkout) with a freshly generated tree."""
    schemas.generate(tmp_path)
    return tmp_path


def edit_published(root: Path, event: str, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the committed schema of ``event`` as if an older version had been published."""
    path = root / "proto-schemas" / "events" / f"{event}.json"
    doc = json.loads(path.read_text())
    change(doc["$defs"][doc["$ref"].rsplit("/", 1)[1]])
    path.write_text(schemas.dump(doc))


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert schemas.generated() == schemas.generated()
    one, two = tmp_path / "one", tmp_path / "two"
    schemas.generate(one)
    schemas.generate(two)
    for path in (one / "proto-schemas").rglob("*.json"):
        text = path.read_text()
        assert text == (two / path.relative_to(one)).read_text()
        assert text.endswith("}\n")


def test_every_event_has_a_schema_and_a_channel(root: Path) -> None:
    out = root / "proto-schemas"
    doc = json.loads((out / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    for ce_type in EVENT_TYPES:
        assert (out / "events" / f"{ce_type}.json").exists()
        # Every event is published by some service, so each has its channel.
        assert doc["channels"][ce_type]["address"].startswith(ce_type)
    requested = doc["channels"]["aiop.workflow.requested.v1"]
    assert requested["address"] == "aiop.workflow.requested.v1.{pool}.{workflow_id}"
    assert set(requested["parameters"]) == {"pool", "workflow_id"}
    assert doc["operations"]["gateway.publish.aiop.workflow.submitted.v1"]["action"] == "send"
    assert doc["operations"]["reporter.answer.aiop.query.report.get.v1"]["action"] == "receive"


def test_the_committed_tree_is_current() -> None:
    assert schemas.check(schemas.find_root(Path(__file__).resolve())) == []


def test_check_passes_on_a_generated_tree(root: Path) -> None:
    assert schemas.check(root) == []
    assert schemas.main(["check", "--root", str(root)]) == 0


def test_check_fails_on_drift(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncapi = root / "proto-schemas" / "asyncapi.json"
    asyncapi.write_text(asyncapi.read_text().replace("AIOP bus", "AIOP buss"))
    assert schemas.main(["check", "--root", str(root)]) == 1
    assert "uv run task schemas" in capsys.readouterr().err


def test_check_fails_on_a_missing_or_stale_file(root: Path) -> None:
    events = root / "proto-schemas" / "events"
    (events / f"{EVENT}.json").unlink()
    shutil.copy(events / "aiop.step.started.v1.json", events / "aiop.step.paused.v1.json")
    [problem] = schemas.check(root)
    assert f"events/{EVENT}.json" in problem
    assert "events/aiop.step.paused.v1.json" in problem


def test_removed_field_is_breaking(root: Path) -> None:
    # The published version had a field the code no longer has.
    edit_published(root, EVENT, lambda d: d["properties"].update(host={"type": "string"}))
    problems = schemas.check(root)
    assert any("WorkflowFailed.host was removed" in p and "v<N+1>" in p for p in problems)


def test_newly_required_field_is_breaking(root: Path) -> None:
    edit_published(root, EVENT, lambda d: d["required"].remove("reason"))
    assert any("WorkflowFailed.reason is newly required" in p for p in schemas.check(root))


def test_changed_type_is_breaking(root: Path) -> None:
    edit_published(root, EVENT, lambda d: d["properties"].update(attempt={"type": "string"}))
    assert any("WorkflowFailed.attempt changed type" in p for p in schemas.check(root))


def test_added_optional_field_is_not_breaking() -> None:
    old = schemas.event_schema(EVENT_TYPES[EVENT])
    new = json.loads(json.dumps(old))
    new["$defs"]["WorkflowFailed"]["properties"]["host"] = {"type": "string", "default": ""}
    assert schemas.breaking_changes(EVENT, old, new) == []


def test_find_root_walks_up(root: Path) -> None:
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert schemas.find_root(deep) == root
