"""Agent steps in the workflow format, and the names agents' work travels under."""

import msgspec
import pytest

from aiop.contracts import StepSpec, WorkflowSpec, validate_spec
from aiop.contracts.agents import (
    lease_id,
    lease_sequence,
    report_subject,
    work_durable,
    work_subject,
)
from aiop.contracts.subjects import InvalidToken, stream_for
from aiop.contracts.workflow import as_written


def test_an_agent_step_is_written_with_agent_and_with() -> None:
    raw = b"""{"name": "w", "steps": [
        {"name": "fetch", "run": ["true"]},
        {"name": "sum", "agent": "summarize", "with": {"sentences": 2}, "needs": ["fetch"]}]}"""
    spec = msgspec.convert(as_written(msgspec.json.decode(raw)), WorkflowSpec)
    step = spec.steps[1]
    assert (step.agent, step.with_, step.run) == ("summarize", {"sentences": 2}, [])
    assert validate_spec(spec) == []
    # On the bus ``run`` is always there: v1 consumers require it.
    assert msgspec.json.encode(step).startswith(b'{"name":"sum","run":[]')
    assert b'"with":{"sentences":2}' in msgspec.json.encode(step)
    with pytest.raises(msgspec.ValidationError, match="run"):
        msgspec.json.decode(raw, type=WorkflowSpec)  # what as_written is for


def test_an_agent_step_takes_no_container_fields() -> None:
    step = StepSpec(name="s", agent="review", run=["x"], image="alpine", secrets=["T"],
                    files={"a": "b"})  # fmt: skip
    problems = validate_spec(WorkflowSpec(name="w", steps=[step]))
    assert "step 's' names an agent and a run argv; it takes one of the two" in problems
    for field in ("image", "secrets", "files"):
        assert f"step 's' is taken by an agent and cannot have {field!r}" in problems


def test_a_capability_must_be_a_subject_token_and_with_needs_an_agent() -> None:
    bad = StepSpec(name="a", run=[], agent="sum.*")
    stray = StepSpec(name="b", run=["true"], with_={"x": 1})
    problems = validate_spec(WorkflowSpec(name="w", steps=[bad, stray]))
    assert any("capability 'sum.*'" in p for p in problems)
    assert "step 'b' has a 'with' input but no 'agent' to take it" in problems


def test_work_and_report_subjects_route_by_their_tokens() -> None:
    assert work_subject("default", "summarize") == "aiop.agent.work.v1.default.summarize"
    assert work_durable("default", "summarize") == "agents-default-summarize"
    assert report_subject("wf1", 2, "sum") == "aiop.agent.report.v1.wf1.2.sum"
    assert stream_for(work_subject("p", "c")) == "AIOP_AGENT_WORK"
    assert stream_for(report_subject("w", 1, "s")) == "AIOP_AGENT_REPORTS"
    with pytest.raises(InvalidToken):
        work_subject("default", "a.>")


def test_a_lease_id_names_its_message_and_delivery() -> None:
    assert lease_id(41, 3) == "41-3"
    assert lease_sequence("41-3") == 41
    assert lease_sequence("41") is None
    assert lease_sequence("x-1") is None
