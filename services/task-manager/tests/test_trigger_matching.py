"""Which events a trigger takes, and the parameters it starts its target with."""

from datetime import UTC, datetime

import pytest

from aiop.contracts.triggers import CloudEvent, Trigger, TriggerTarget
from aiop.task_manager.domain.triggers import MissingPart, lookup, matches, parameters_for

PUSH = CloudEvent(
    specversion="1.0", id="e1", source="github.com/org/repo", type="com.github.push",
    subject="main",
    time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    data={"ref": "main", "commits": 3, "repo": {"private": False, "tags": ["a", "b"]}},
)  # fmt: skip


def trigger(**fields: object) -> Trigger:
    base: dict[str, object] = {"name": "t", "event_type": "com.github.push",
                               "target": TriggerTarget(template="ci-cd")}  # fmt: skip
    return Trigger(**{**base, **fields})  # type: ignore[arg-type]


def test_type_source_and_enabled() -> None:
    assert matches(trigger(), PUSH)
    assert matches(trigger(event_type="com.github.*"), PUSH)
    assert not matches(trigger(event_type="com.github.pull"), PUSH)
    assert matches(trigger(source="github.com/org/repo"), PUSH)
    assert not matches(trigger(source="github.com/org/other"), PUSH)
    assert not matches(trigger(enabled=False), PUSH)


def test_the_filter_wants_every_path_equal() -> None:
    assert matches(trigger(filter={"ref": "main", "repo.private": False}), PUSH)
    assert matches(trigger(filter={"repo.tags.1": "b", "commits": 3.0}), PUSH)
    assert not matches(trigger(filter={"ref": "dev"}), PUSH)
    assert not matches(trigger(filter={"repo.private": 0}), PUSH)  # a boolean wants a boolean
    assert not matches(trigger(filter={"missing.path": None}), PUSH)  # absent is not null
    assert not matches(trigger(filter={"ref.deeper": "x"}), PUSH)
    no_data = CloudEvent(specversion="1.0", id="e2", source="s", type="com.github.push")
    assert not matches(trigger(filter={"ref": "main"}), no_data)
    assert matches(trigger(), no_data)


def test_lookup_walks_mappings_and_lists() -> None:
    assert lookup(PUSH.data, "repo.tags.0") == "a"
    assert lookup(PUSH.data, "repo") == {"private": False, "tags": ["a", "b"]}


def test_a_placeholder_alone_keeps_its_value_within_text_it_is_text() -> None:
    params = {
        "commits": "${{ event.data.commits }}",
        "label": "push ${{ event.id }} of ${{event.data.commits}} on ${{ event.subject }}",
        "repo": "${{ event.data.repo }}",
        "when": "${{ event.time }}",
        "nested": {"list": ["${{ event.source }}", 7]},
        "fixed": 1,
    }
    filled = parameters_for(trigger(target=TriggerTarget(template="x", parameters=params)), PUSH)
    assert filled == {
        "commits": 3,
        "label": "push e1 of 3 on main",
        "repo": {"private": False, "tags": ["a", "b"]},
        "when": "2026-01-02T03:04:05+00:00",
        "nested": {"list": ["github.com/org/repo", 7]},
        "fixed": 1,
    }


def test_a_part_the_event_lacks_is_named() -> None:
    target = TriggerTarget(template="x", parameters={"b": "${{ event.data.branch }}"})
    with pytest.raises(MissingPart, match=r"data\.branch"):
        parameters_for(trigger(target=target), PUSH)
    bare = CloudEvent(specversion="1.0", id="e3", source="s", type="t")
    with pytest.raises(MissingPart, match="subject"):
        parameters_for(trigger(target=TriggerTarget(template="x", parameters={
            "s": "${{ event.subject }}"})), bare)  # fmt: skip
