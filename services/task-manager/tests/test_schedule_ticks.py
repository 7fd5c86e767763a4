"""Which ticks of a schedule are due, and which of them run under its policy."""

from datetime import UTC, datetime, timedelta

import pytest

from aiop.task_manager.domain.schedule import MAX_TICKS, BadSchedule, check, due, next_tick

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def test_next_tick_is_strictly_after_and_follows_the_timezone() -> None:
    assert next_tick("* * * * *", "UTC", T0) == at(minutes=1)
    assert next_tick("* * * * * */10", "UTC", at(seconds=3)) == at(seconds=10)
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert next_tick("0 9 * * *", "Europe/Berlin", T0) == at(hours=8)
    summer = datetime(2026, 7, 1, tzinfo=UTC)
    assert next_tick("0 9 * * *", "Europe/Berlin", summer) == summer + timedelta(hours=7)


@pytest.mark.parametrize(
    ("cron", "timezone", "says"),
    [
        ("61 * * * *", "UTC", "not a cron expression"),
        ("* * * *", "UTC", "not a cron expression"),
        ("* * * * * * *", "UTC", "not a cron expression"),
        ("0 0 31 2 *", "UTC", "not a cron expression"),  # no February has a 31st
        ("every day", "UTC", "not a cron expression"),
        ("* * * * *", "Mars/Olympus", "unknown timezone"),
        ("* * * * *", "../../etc/passwd", "unknown timezone"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(cron: str, timezone: str, says: str) -> None:
    with pytest.raises(BadSchedule, match=says):
        check(cron, timezone)


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0 3 * * mon-fri", "* * * * * *", "@daily"])
def test_good_schedules_pass(cron: str) -> None:
    check(cron, "America/New_York")


def test_nothing_is_due_before_next_at() -> None:
    found = due("* * * * *", "UTC", at(minutes=1), at(seconds=30), "skip", 10)
    assert (found.fire, found.missed, found.next_at) == ([], 0, at(minutes=1))


def test_a_tick_on_time_fires_and_next_at_moves_past_now() -> None:
    found = due("* * * * *", "UTC", at(minutes=1), at(minutes=1, seconds=0.2), "skip", 10)
    assert (found.fire, found.missed, found.next_at) == ([at(minutes=1)], 0, at(minutes=2))


@pytest.mark.parametrize("policy", ["skip", "catch_up"])
def test_ticks_a_busy_pass_was_late_for_all_fire(policy: str) -> None:
    """Every-second ticks a pass reaches 2.5 s late are on time: none is dropped."""
    found = due("* * * * * *", "UTC", T0, at(seconds=2.5), policy, 10)
    assert found.fire == [T0, at(seconds=1), at(seconds=2)]
    assert (found.missed, found.next_at) == (0, at(seconds=3))


def test_skip_runs_only_the_latest_tick_missed_while_down() -> None:
    """Down from 00:00 to 05:00:30: of the hourly ticks 00:00 to 05:00, 05:00 runs."""
    found = due("0 * * * *", "UTC", T0, at(hours=5, seconds=30), "skip", 10)
    assert found.fire == [at(hours=5)]
    assert (found.missed, found.next_at) == (5, at(hours=6))


def test_catch_up_runs_every_tick_missed_while_down() -> None:
    found = due("0 * * * *", "UTC", T0, at(hours=5, seconds=30), "catch_up", 10)
    assert found.fire == [at(hours=h) for h in range(6)]
    assert (found.missed, found.next_at) == (0, at(hours=6))


def test_catch_up_runs_the_latest_ticks_up_to_its_limit() -> None:
    found = due("0 * * * *", "UTC", T0, at(hours=5, seconds=30), "catch_up", 2)
    assert found.fire == [at(hours=4), at(hours=5)]
    assert (found.missed, found.next_at) == (4, at(hours=6))


def test_a_long_outage_costs_a_bounded_walk() -> None:
    """A year down for an every-second schedule: the walk stops at MAX_TICKS."""
    now = at(days=365, seconds=0.5)
    skip = due("* * * * * *", "UTC", T0, now, "skip", 10)
    assert skip.fire[-1] == at(days=365)
    assert len(skip.fire) == 5  # the on-time ones: due in the last five seconds
    assert skip.missed == MAX_TICKS
    caught = due("* * * * * *", "UTC", T0, now, "catch_up", 1000)
    assert len(caught.fire) == MAX_TICKS
    assert caught.next_at == at(days=365, seconds=1)
