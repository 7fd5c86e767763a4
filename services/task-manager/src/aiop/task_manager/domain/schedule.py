"""When a schedule fires: its cron expression read in its timezone (croniter), and which
due ticks run under its policy. No I/O: ``now`` is always given.

Times go in and out as aware datetimes; ticks are computed in the schedule's timezone
(so ``0 2 * * *`` follows daylight saving time) and compared as instants.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# A tick due at most this long ago is on time: the scheduler was running, just busy.
# Older ones were missed (no task-manager was running) and the policy decides.
ON_TIME = timedelta(seconds=5)
# Never more ticks than this for one schedule in one pass, whatever the policy says.
MAX_TICKS = 100


class BadSchedule(ValueError):
    """A cron expression croniter cannot read, or a timezone zoneinfo does not know."""


@dataclass(frozen=True)
class Due:
    fire: list[datetime]  # the ticks to run now, oldest first
    missed: int  # due ticks the policy dropped
    next_at: datetime  # the first tick after now


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadSchedule(f"unknown timezone {timezone!r}") from exc


def check(cron: str, timezone: str) -> None:
    """Return if the schedule can be computed; BadSchedule says why not."""
    zone(timezone)
    # strict: a day-of-month that no month has (31 in February only) is refused too.
    fields = len(cron.split())
    alias = cron.startswith("@") and fields == 1  # @hourly, @daily, ...
    if not (alias or fields in (5, 6)) or not croniter.is_valid(cron, strict=True):
        raise BadSchedule(
            f"{cron!r} is not a cron expression: five fields (minute hour day month"
            " weekday), six with seconds last, or @hourly, @daily, @weekly, ..."
        )


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    tick: datetime = croniter(cron, after.astimezone(zone(timezone))).get_next(datetime)
    return tick


def due(
    cron: str,
    timezone: str,
    next_at: datetime,
    now: datetime,
    policy: str,
    catch_up_limit: int,
) -> Due:
    """The ticks from ``next_at`` (a tick not yet fired) up to ``now`` that run, per
    ``policy``: ``skip`` runs the on-time ones, or else the latest missed one;
    ``catch_up`` runs every one, the latest ``catch_up_limit`` of them at most."""
    following = next_tick(cron, timezone, now)
    if next_at > now:
        return Due([], 0, next_at)
    cap = min(catch_up_limit if policy == "catch_up" else MAX_TICKS, MAX_TICKS)
    # Walk back from now, so a long outage costs at most ``cap`` steps, not one per tick.
    ticks: list[datetime] = []
    walk = croniter(cron, following.astimezone(zone(timezone)), is_prev=True)
    while len(ticks) < cap:
        tick: datetime = walk.get_prev(datetime)
        if tick < next_at or (policy == "skip" and ticks and tick < now - ON_TIME):
            break
        ticks.append(tick)
    fire = ticks[::-1]
    return Due(fire, _count_missed(cron, timezone, next_at, fire), following)


def _count_missed(cron: str, timezone: str, next_at: datetime, fire: list[datetime]) -> int:
    """How many ticks from ``next_at`` to the first fired one were dropped, counted up
    to MAX_TICKS (the number is for a log line, not worth a long walk)."""
    if not fire or fire[0] == next_at:
        return 0
    walk = croniter(cron, next_at.astimezone(zone(timezone)) - timedelta(microseconds=1))
    missed = 0
    while missed < MAX_TICKS and walk.get_next(datetime) < fire[0]:
        missed += 1
    return missed
