"""Contracts basics: the wire format, subject tokens, workflow validation."""

import pytest

from aiop.contracts import (
    EVENT_TYPES,
    InvalidToken,
    RetryPolicy,
    StepSpec,
    WorkflowRequested,
    WorkflowSpec,
    WorkflowSubmitted,
    check_token,
    decode_event,
    encode_event,
    validate_spec,
)
from aiop.contracts.envelope import UndecodableEvent, event_type_of

SPEC = WorkflowSpec(name="ci", steps=[StepSpec(name="build", run=["make"])])


def test_encode_decode_round_trip() -> None:
    event = WorkflowSubmitted(workflow_id="wf1", spec=SPEC, principal="alice")
    envelope = encode_event(event, "aiop/test")
    assert envelope.subject == "aiop.workflow.submitted.v1.wf1"
    assert envelope.headers["Nats-Msg-Id"] == event.event_id == envelope.headers["ce-id"]
    assert envelope.headers["ce-type"] == event.TYPE
    assert decode_event(envelope.body, WorkflowSubmitted) == event
    assert event_type_of(envelope.subject, envelope.headers) is WorkflowSubmitted
    assert event_type_of(envelope.subject, None) is WorkflowSubmitted


def test_routing_tokens_in_subject() -> None:
    event = WorkflowRequested(workflow_id="wf1", spec=SPEC, pool="gpu")
    assert event.subject() == "aiop.workflow.requested.v1.gpu.wf1"


def test_every_type_is_its_subject_stem() -> None:
    for ce_type, cls in EVENT_TYPES.items():
        assert ce_type == cls.TYPE
        assert ce_type.split(".")[3] == "v1"


def test_undecodable_body_says_why() -> None:
    with pytest.raises(UndecodableEvent, match=r"aiop\.workflow\.submitted\.v1"):
        decode_event(b'{"workflow_id": "wf1"}', WorkflowSubmitted)


@pytest.mark.parametrize("bad", ["a.b", "a*", ">", "a b", "a\tb", "", "x" * 129])
def test_check_token_rejects(bad: str) -> None:
    with pytest.raises(InvalidToken):
        check_token(bad)


def test_check_token_accepts() -> None:
    assert check_token("wf-1_A") == "wf-1_A"


def test_unsafe_workflow_id_never_reaches_a_subject() -> None:
    with pytest.raises(InvalidToken):
        WorkflowSubmitted(workflow_id="wf.>", spec=SPEC, principal="a").subject()


def spec(*steps: StepSpec) -> WorkflowSpec:
    return WorkflowSpec(name="wf", steps=list(steps))


def test_valid_spec_has_no_problems() -> None:
    assert (
        validate_spec(
            spec(StepSpec(name="a", run=["x"]), StepSpec(name="b", run=["y"], needs=["a"]))
        )
        == []
    )


def test_validate_spec_finds_a_cycle() -> None:
    problems = validate_spec(
        spec(StepSpec(name="a", run=["x"], needs=["b"]), StepSpec(name="b", run=["y"], needs=["a"]))
    )
    assert any("cycle" in p for p in problems)


def test_validate_spec_finds_unknown_needs_empty_argv_and_duplicates() -> None:
    problems = validate_spec(
        spec(
            StepSpec(name="a", run=[], needs=["ghost"]),
            StepSpec(name="a", run=["x"]),
            StepSpec(name="c", run=[""]),
        )
    )
    text = "\n".join(problems)
    assert "needs unknown step 'ghost'" in text
    assert "step 'a' has an empty run argv" in text
    assert "step 'c' has an empty run argv" in text
    assert "step 'a' is defined twice" in text


def test_validate_spec_finds_self_need_and_no_steps() -> None:
    assert any(
        "needs itself" in p for p in validate_spec(spec(StepSpec(name="a", run=["x"], needs=["a"])))
    )
    assert any("at least one step" in p for p in validate_spec(spec()))


def test_retry_policies_and_timeouts_are_checked() -> None:
    def problems(**fields: object) -> list[str]:
        return validate_spec(spec(StepSpec(name="a", run=["x"], **fields)))  # type: ignore[arg-type]

    assert problems(retries=RetryPolicy(attempts=5, backoff=0.5, max_backoff=30, jitter=0.5)) == []
    assert problems(retries=RetryPolicy(attempts=0)) == [
        "step 'a' retries: attempts must be from 1 to 100, not 0"
    ]
    assert problems(retries=RetryPolicy(backoff=5, max_backoff=1)) == [
        "step 'a' retries: max_backoff must be at least backoff (5), not 1"
    ]
    assert "jitter must be from 0 to 1" in problems(retries=RetryPolicy(jitter=1.5))[0]
    assert "backoff must be 0 or more" in problems(retries=RetryPolicy(backoff=float("nan")))[0]
    assert problems(timeout=float("inf")) == ["step 'a' has a timeout that is not positive"]


def test_inputs_outputs_and_caches_stay_in_the_work_directory() -> None:
    build = StepSpec(name="build", run=["make"], outputs=["dist/", "app.bin"],
                     caches={"pip": "/root/.cache/pip", "ccache": ".ccache"})  # fmt: skip
    use = StepSpec(name="use", run=["x"], needs=["build"], inputs={"build": "in"})
    assert validate_spec(spec(build, use)) == []
    bad = StepSpec(
        name="bad", run=["x"], inputs={"build": "../up"}, outputs=["/etc/passwd"],
        caches={"a b": "c", "ok": "../out"},
    )  # fmt: skip
    problems = validate_spec(spec(build, bad))
    assert "step 'bad' takes inputs from 'build', which it does not need" in problems
    assert (
        "step 'bad' input path '../up' must be relative and stay in the work directory" in problems
    )
    assert (
        "step 'bad' output path '/etc/passwd' must be relative and stay in the work directory"
        in problems
    )
    assert "step 'bad' cache path '../out' must be relative and stay in the work directory" in (
        problems
    )
    assert any("cache name 'a b'" in p for p in problems)
