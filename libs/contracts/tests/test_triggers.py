"""External event subjects and trigger validation."""

from aiop.contracts.subjects import check_token
from aiop.contracts.triggers import (
    Trigger,
    TriggerTarget,
    check_trigger,
    ext_msg_id,
    ext_subject,
    subject_token,
    type_matches,
)


def test_a_safe_value_is_its_own_token() -> None:
    assert subject_token("ci_build-7") == "ci_build-7"


def test_an_unsafe_value_reads_alike_and_stays_apart_by_its_hash() -> None:
    token = subject_token("https://github.com/org/repo")
    assert token.startswith("https-github-com-org-repo-")
    check_token(token)
    # Two values that read the same once sanitised are different tokens.
    assert subject_token("a.b") != subject_token("a/b")
    assert check_token(subject_token("...")).startswith("x-")
    assert check_token(subject_token("é" * 300))  # long and nothing readable: still a token


def test_the_subject_has_one_token_each_for_source_and_type() -> None:
    subject = ext_subject("github.com/org", "com.github.push")
    assert subject.split(".")[0] == "ext"
    assert len(subject.split(".")) == 3


def test_the_message_id_names_project_source_and_id() -> None:
    one = ext_msg_id("default", "s", "1")
    assert one == ext_msg_id("default", "s", "1")
    assert len({one, ext_msg_id("other", "s", "1"), ext_msg_id("default", "s2", "1"),
                ext_msg_id("default", "s", "2")}) == 4  # fmt: skip


def test_type_patterns() -> None:
    assert type_matches("com.github.push", "com.github.push")
    assert not type_matches("com.github.push", "com.github.push.v2")
    assert type_matches("com.github.*", "com.github.push")
    assert not type_matches("com.github.*", "com.gitlab.push")
    assert type_matches("*", "anything")


def trigger(**fields: object) -> Trigger:
    base: dict[str, object] = {
        "name": "on-push", "event_type": "com.github.push",
        "target": TriggerTarget(template="ci-cd", parameters={"ref": "${{ event.data.ref }}"}),
    }  # fmt: skip
    return Trigger(**{**base, **fields})  # type: ignore[arg-type]


def test_a_good_trigger_has_no_problems() -> None:
    assert check_trigger(trigger()) == []


def test_every_problem_is_named() -> None:
    bad = trigger(
        name="on push", event_type="com.*.push", source="", filter={"a..b": 1},
        target=TriggerTarget(template="Not A Ref", parameters={
            "x": "${{ event.nope }}", "y": ["${{ event.id.more }}"],
        }),
    )  # fmt: skip
    problems = check_trigger(bad)
    assert len(problems) == 7, problems
    assert any("name" in p for p in problems)
    assert any("event_type" in p for p in problems)
    assert any("event.nope" in p for p in problems)
    assert any("event.id.more" in p for p in problems)


def test_a_target_is_a_template_or_a_task_exactly_one() -> None:
    assert check_trigger(trigger(target=TriggerTarget(task="nightly-report"))) == []
    for target in (TriggerTarget(), TriggerTarget(template="ci-cd", task="nightly-report")):
        assert check_trigger(trigger(target=target)) == [
            "the target is a template or a task: give exactly one of them"
        ]
    (problem,) = check_trigger(trigger(target=TriggerTarget(task="a.b")))
    assert "target task 'a.b'" in problem
