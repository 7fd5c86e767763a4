"""The sample agent (examples/agents): its summariser and its code review, its two
handlers, and the mixed workflow it serves, run step by step without the platform."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import yaml

from aiop.client.agent import Queued, StepFailure
from aiop.contracts.workflow import WorkflowSpec, as_written, validate_spec

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "examples" / "agents"
WORKFLOW = ROOT / "examples" / "workflows" / "agent-mixed.yaml"


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/agents/agent.py, imported as ``python agent.py`` would find its modules."""
    monkeypatch.syspath_prepend(str(AGENTS))
    return importlib.import_module("agent")


@pytest.fixture
def summarize(sample: ModuleType) -> ModuleType:
    return importlib.import_module("summarize")


@pytest.fixture
def review(sample: ModuleType) -> ModuleType:
    return importlib.import_module("review")


class FakeContext:
    """What the handlers use of ``ctx``, recorded."""

    def __init__(self, needs: dict[str, Any] | None = None) -> None:
        self.needs = needs or {}
        self.progress_reports: list[tuple[float, str | None, Any]] = []
        self.lines: list[str] = []

    def progress(self, percent: float, message: str | None = None, partial: Any = None) -> Queued:
        self.progress_reports.append((percent, message, partial))
        return Queued()

    def log(self, text: str, stream: str = "stdout") -> Queued:
        self.lines.append(text)
        return Queued()

    def fail(self, error: str) -> None:
        raise StepFailure(error)


TEXT = (
    "Rivers carry water from the hills to the sea. The weather was pleasant on Tuesday. "
    "Rivers shape valleys as the water carries stones and sand downstream. "
    "Dr. Reed measured the rainfall by the rivers each spring. "
    "Lunch was late."
)


# -- the summariser ---------------------------------------------------------------------


def test_sentences_end_at_stops_but_not_at_abbreviations_or_initials(summarize: Any) -> None:
    text = 'Dr. Smith met J. Doe in 2020. They talked, e.g. about rain. "Why?" she asked! Then'
    assert summarize.sentences(text + " they left...\n\nA new paragraph\n- an item\n- another") == [
        "Dr. Smith met J. Doe in 2020.", "They talked, e.g. about rain.", '"Why?" she asked!',
        "Then they left...", "A new paragraph", "- an item", "- another",
    ]  # fmt: skip


def test_the_sentences_with_the_frequent_words_are_kept_in_order(summarize: Any) -> None:
    result = summarize.summarize(TEXT, 2)
    assert result["sentences"] == [
        "Rivers carry water from the hills to the sea.",
        "Rivers shape valleys as the water carries stones and sand downstream.",
    ]
    assert result["positions"] == [0, 2]
    assert result["summary"] == " ".join(result["sentences"])
    assert result["total_sentences"] == 5
    assert result["keywords"][0] == "rivers"
    assert not set(result["keywords"]) & summarize.STOPWORDS


def test_asking_for_more_sentences_than_there_are_gives_them_all(summarize: Any) -> None:
    assert summarize.summarize("One idea here. Another idea there.", 5)["positions"] == [0, 1]
    assert summarize.summarize("", 2)["sentences"] == []
    with pytest.raises(ValueError):
        summarize.summarize(TEXT, 0)


def test_the_summariser_reports_progress_up_to_done(summarize: Any) -> None:
    seen: list[tuple[float, str, dict[str, Any]]] = []
    summarize.summarize(TEXT * 4, 3, progress=lambda *report: seen.append(report))
    percents = [p for p, _, _ in seen]
    assert percents == sorted(percents)
    assert (percents[0], percents[-1]) == (10, 100)
    assert any("best_so_far" in partial for _, _, partial in seen)
    assert len(seen[-1][2]["sentences"]) == 3


# -- the code review --------------------------------------------------------------------

BAD = """import os, sys
from typing import List
def f(x=[], *, y={}):
    try:
        return sys.argv
    except:
        pass
class Thing:
    def method(self):
        def inner():
            pass
"""


def rules(review: Any, name: str, source: str, limit: int = 100) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in review.review_file(name, source, limit)]


def test_the_review_finds_what_each_rule_is_about(review: Any) -> None:
    assert sorted(rules(review, "bad.py", BAD, limit=30)) == [
        (1, "missing-docstring"), (1, "unused-import"), (2, "unused-import"),
        (3, "missing-docstring"), (3, "mutable-default"), (3, "mutable-default"),
        (6, "bare-except"), (8, "missing-docstring"), (9, "missing-docstring"),
    ]  # fmt: skip
    long = '"""A module."""\nx = 1  # ' + "y" * 100 + "\n"
    assert rules(review, "long.py", long) == [(2, "long-line")]
    assert rules(review, "notes.txt", "import os\n" + "z" * 101) == [(2, "long-line")]


def test_syntax_errors_come_from_the_parser_and_the_compiler(review: Any) -> None:
    assert rules(review, "a.py", "def f(:\n    pass\n") == [(1, "syntax-error")]
    (finding,) = review.review_file("b.py", '"""B."""\n\nreturn 1\n')
    assert (finding.line, finding.rule, finding.message) == (3, "syntax-error",
                                                             "'return' outside function")  # fmt: skip


def test_imports_used_exported_or_quoted_are_not_findings(review: Any) -> None:
    source = '''"""M."""
import os.path
from pathlib import Path
from typing import Any
from collections import OrderedDict
__all__ = ["OrderedDict"]


def _f(p: "Path") -> Any:
    return os.path.join(p)
'''
    assert rules(review, "m.py", source) == []
    assert rules(review, "pkg/__init__.py", '"""P."""\nfrom os import sep\n') == []


def test_the_review_of_several_files_is_ordered_and_counted(review: Any) -> None:
    seen: list[float] = []
    result = review.review({"z.py": BAD, "a.py": "def f(:\n"}, 100,
                           lambda percent, message, partial: seen.append(percent))  # fmt: skip
    files = [f["file"] for f in result["findings"]]
    assert files == sorted(files)
    assert set(result["findings"][0]) == {"file", "line", "rule", "message"}
    assert result["files"] == 2
    assert result["counts"]["unused-import"] == 2
    assert sum(result["counts"].values()) == len(result["findings"])
    assert seen == [50, 100]


def test_the_sample_agent_passes_its_own_review(review: Any) -> None:
    files = {p.name: p.read_text() for p in AGENTS.glob("*.py")}
    assert review.review(files)["findings"] == []


# -- the handlers -----------------------------------------------------------------------


def test_the_agent_offers_both_capabilities(sample: Any) -> None:
    agent = sample.build("x", "p", 2)
    assert sorted(agent.handlers) == ["review-code", "summarize"]
    assert (agent.name, agent.project, agent.concurrency) == ("x", "p", 2)


def test_summarize_takes_its_text_from_the_input_a_file_or_a_needed_step(
    sample: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = FakeContext()
    assert sample.summarize_step({"text": TEXT, "sentences": 1}, ctx)["positions"] == [2]
    assert ctx.progress_reports[-1][0] == 100
    assert ctx.lines == ["5 sentences, 1 kept"]
    (tmp_path / "doc.txt").write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    assert sample.summarize_step({"path": "doc.txt"}, FakeContext())["total_sentences"] == 5
    from_needs = sample.summarize_step({"sentences": 2}, FakeContext({"draft": {"text": TEXT}}))
    assert from_needs["positions"] == [0, 2]


@pytest.mark.parametrize(("given", "says"), [
    ({"path": "../outside.txt"}, "outside"), ({"path": "missing.txt"}, "No such file"),
    ({}, "no text"), ({"text": "x", "sentences": "two"}, "whole number"),
])  # fmt: skip
def test_summarize_fails_the_step_saying_why(
    sample: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, Any], says: str
) -> None:
    (tmp_path / "outside.txt").write_text(TEXT)
    (tmp_path / "agent").mkdir()
    monkeypatch.chdir(tmp_path / "agent")
    with pytest.raises(StepFailure, match=says):
        sample.summarize_step(given, FakeContext())


async def test_review_code_reviews_the_files_it_is_given(sample: Any) -> None:
    ctx = FakeContext()
    result = await sample.review_step({"files": {"bad.py": BAD}, "max_line_length": 30}, ctx)
    assert result["counts"]["bare-except"] == 1
    assert ctx.lines == ["9 findings in 1 files"]
    assert ctx.progress_reports[-1][0] == 100
    with pytest.raises(StepFailure, match="map file names"):
        await sample.review_step({"files": ["bad.py"]}, FakeContext())


# -- the mixed workflow -----------------------------------------------------------------


def test_the_mixed_workflow_is_valid_and_its_steps_fit_together(
    sample: Any, tmp_path: Path
) -> None:
    """Each step run as the platform would: draft's summary becomes the agent's need, the
    agent's output becomes output.json, which show reads from its inputs."""
    document = yaml.safe_load(WORKFLOW.read_text())
    spec = msgspec.convert(as_written(document), WorkflowSpec)
    assert validate_spec(spec) == []
    draft, agent_step, show = spec.steps
    assert agent_step.agent == "summarize"
    summary = tmp_path / "summary.json"
    run(draft.run, tmp_path / "draft", AIOP_SUMMARY=str(summary))
    needs = {"draft": json.loads(summary.read_text())}
    output = sample.summarize_step(agent_step.with_, FakeContext(needs))
    assert len(output["sentences"]) == agent_step.with_["sentences"]
    kept = tmp_path / "show" / show.inputs["summarize"] / agent_step.outputs[0]
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps(output))
    printed = run(show.run, tmp_path / "show")
    assert printed.strip() == output["summary"]


def run(argv: list[str], workdir: Path, **env: str) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable if argv[0] == "python3" else argv[0], *argv[1:]]
    done = subprocess.run(argv, cwd=workdir, env={**os.environ, **env}, capture_output=True,
                          text=True, check=True, timeout=60)  # fmt: skip
    return done.stdout
