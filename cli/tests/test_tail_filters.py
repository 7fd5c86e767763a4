"""Which streams ``aiop tail`` reads, and the filters it hands the server for each."""

import pytest

from aiop.cli.tail import streams_for, tail
from aiop.contracts.subjects import InvalidToken

DEFAULT = ["aiop.workflow.>", "aiop.step.>", "aiop.dlq.>"]


def test_one_consumer_per_stream_filters_on_all_its_patterns() -> None:
    assert streams_for(DEFAULT) == {
        "AIOP": ["aiop.step.>", "aiop.workflow.>"],
        "AIOP_DLQ": ["aiop.dlq.>"],
    }


def test_a_wide_pattern_is_cut_to_each_streams_subjects() -> None:
    assert streams_for([">"]) == {
        "AIOP": ["aiop.executor.circuit.>", "aiop.step.>", "aiop.workflow.>"],
        "AIOP_LOGS": ["aiop.output.>"],
        "AIOP_EXT": ["ext.>"],
        "AIOP_DLQ": ["aiop.dlq.>"],
        "AIOP_AGENT_REPORTS": ["aiop.agent.report.>", "aiop.agent.withdrawn.>"],
    }  # and never AIOP_AGENT_WORK: reading a work queue takes its messages away


def test_a_pattern_inside_another_is_dropped() -> None:
    assert streams_for(["aiop.>", "aiop.step.failed.v1.*"]) == streams_for(["aiop.>"])
    assert streams_for(["aiop.workflow.>", "aiop.*.failed.v1.*"]) == {
        "AIOP": ["aiop.step.failed.v1.*", "aiop.workflow.>"],
        "AIOP_LOGS": ["aiop.output.failed.v1.*"],
        "AIOP_DLQ": ["aiop.dlq.failed.v1.*"],
    }


def test_partly_overlapping_patterns_fall_back_to_the_stream_subjects_they_touch() -> None:
    # The server refuses overlapping filters; the client-side match picks the messages.
    assert streams_for(["aiop.workflow.*.v1.wf-1", "aiop.workflow.failed.>"]) == {
        "AIOP": ["aiop.workflow.>"]
    }


def test_a_workflow_is_selected_on_the_server() -> None:
    # Dead letters carry no workflow id, so their stream is not read at all.
    assert streams_for(DEFAULT, "wf-1") == {
        "AIOP": ["aiop.step.*.*.wf-1", "aiop.workflow.*.*.*.wf-1", "aiop.workflow.*.*.wf-1"]
    }
    assert streams_for(["aiop.workflow.requested.v1.>", "aiop.output.>"], "wf-1") == {
        "AIOP": ["aiop.workflow.requested.v1.*.wf-1", "aiop.workflow.requested.v1.wf-1"],
        "AIOP_LOGS": ["aiop.output.*.*.wf-1"],
    }


def test_a_pattern_outside_the_workflow_reads_nothing() -> None:
    assert streams_for(["aiop.dlq.>", "ext.>"], "wf-1") == {}


async def test_a_workflow_id_that_is_no_subject_token_is_refused() -> None:
    with pytest.raises(InvalidToken):
        await tail("nats://unused", DEFAULT, "wf.*", None, True, 1, 1.0, print, False)
