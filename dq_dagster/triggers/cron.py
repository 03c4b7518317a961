"""Cron due times of stored job definitions, on ``croniter``, with Dagster's timezone rules.

``due_times(cron, timezone, after, until)`` gives the UTC times a 5-field cron expression fires in
an IANA timezone, strictly after ``after`` and up to ``until``. croniter walks naive wall-clock
times (it is only trusted without timezones); each wall time is then placed in the timezone the way
Dagster's own schedules place their ticks, so a stored definition fires exactly when a Dagster
``ScheduleDefinition`` with the same cron and ``execution_timezone`` would
(``tests/dagster/test_cron.py`` compares them across DST changes):

* a wall time that does not exist (spring forward, e.g. 02:30 in Europe/Berlin on the last Sunday
  of March): an hourly schedule skips it; any other schedule fires at the end of the gap (03:00),
  so a daily job does not lose its day;
* a wall time that happens twice (fall back): an hourly schedule fires at both; any other schedule
  fires once, at the second (post-transition) one.

Dagster's rules assume DST shifts of a whole hour; in the one zone with a 30-minute shift
(Australia/Lord_Howe) the two differ around its transitions (ours: croniter's wall times, mapped
as above; Dagster's: shifted by its own hour arithmetic).

``check_cron`` refuses an expression croniter cannot parse, one that is not 5 fields, and one that
never fires (``0 0 31 2 *``). No Dagster import here.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from dq_stores.errors import InvalidArtifactError
from dq_stores.models.job_definitions import cron_problem

__all__ = ["check_cron", "check_timezone", "due_times", "next_fire_time"]

_FIELD = "trigger.cron"
_HORIZON_YEARS = 30  # the same horizon as cron_problem: beyond it an expression never fires
_SETTLE = timedelta(hours=2)


def check_timezone(timezone: str) -> tzinfo:
    """The ``ZoneInfo`` of an IANA name, or ``InvalidArtifactError`` naming ``trigger.timezone``."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArtifactError(
            f"timezone {timezone!r} is not an IANA time zone name", field="trigger.timezone"
        ) from exc


@lru_cache(maxsize=1024)
def _checked(cron: str) -> tuple[bool, str | None]:
    """(repeats every hour, problem or None) for one expression; cached, it is asked every tick."""
    problem = cron_problem(cron)
    if problem is not None:
        return False, problem
    fields = croniter.expand(cron)[0]
    return len(fields[1]) == 1 and fields[1][0] == "*", None


def check_cron(cron: str) -> None:
    """``InvalidArtifactError`` (field ``trigger.cron``) unless ``cron`` is a 5-field expression
    that fires at least once.
    """
    problem = _checked(cron)[1]
    if problem is not None:
        raise InvalidArtifactError(problem, field=_FIELD)


def _exists(wall: datetime) -> bool:
    # A wall time in a gap does not survive the round trip through UTC.
    back = wall.astimezone(UTC).astimezone(wall.tzinfo)
    return back.replace(tzinfo=None, fold=0) == wall.replace(tzinfo=None, fold=0)


def _ambiguous(wall: datetime) -> bool:
    return wall.replace(fold=0).utcoffset() != wall.replace(fold=1).utcoffset()


def _end_of_gap(wall: datetime) -> datetime:
    # The first existing time after a gap: the gap's hour plus the DST shift (gaps start on the hour).
    zone = wall.tzinfo
    assert zone is not None
    shift = zone.dst(wall + timedelta(hours=1)) or timedelta(hours=1)
    return wall.replace(minute=0, second=0, microsecond=0) + shift


def _wall_candidates(cron: str, zone: tzinfo, start: datetime, hourly: bool) -> Iterator[datetime]:
    """Aware fire times from the wall times croniter gives, nearly in order (an ambiguous hour's
    two readings interleave), possibly before ``start``.
    """
    # An hour back so that both readings of an ambiguous wall time are considered.
    naive = start.astimezone(zone).replace(tzinfo=None) - timedelta(hours=1)
    walker = croniter(cron, naive, max_years_between_matches=_HORIZON_YEARS)
    while True:
        wall = walker.get_next(datetime).replace(tzinfo=zone)
        if not _exists(wall):
            if not hourly:
                yield _end_of_gap(wall)
        elif _ambiguous(wall):
            if hourly:
                yield wall.replace(fold=0)
            yield wall.replace(fold=1)
        else:
            yield wall


def _candidates(cron: str, zone: tzinfo, start: datetime, hourly: bool) -> Iterator[datetime]:
    """``_wall_candidates`` in time order: held back until a later wall time proves nothing
    earlier can follow (a reading moves by at most the DST shift, under two hours everywhere).
    """
    pending: list[tuple[datetime, int, datetime]] = []
    for n, moment in enumerate(_wall_candidates(cron, zone, start, hourly)):
        instant = moment.astimezone(UTC)
        heapq.heappush(pending, (instant, n, moment))
        while pending and pending[0][0] < instant - _SETTLE:
            yield heapq.heappop(pending)[2]


def due_times(cron: str, timezone: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """The times ``cron`` (in ``timezone``) fires strictly after ``after`` and up to ``until``
    (inclusive), in UTC, oldest first. Raises ``InvalidArtifactError`` for a cron expression that
    is invalid or never fires, and for an unknown timezone.
    """
    hourly, problem = _checked(cron)
    if problem is not None:
        raise InvalidArtifactError(problem, field=_FIELD)
    zone = check_timezone(timezone)
    after_utc, until_utc = after.astimezone(UTC), until.astimezone(UTC)
    last = after_utc
    for moment in _candidates(cron, zone, after_utc, hourly):
        moment_utc = moment.astimezone(UTC)
        if moment_utc <= last:
            continue  # before the window, or a repeat (two wall times mapping to one instant)
        if moment_utc > until_utc:
            return
        last = moment_utc
        yield moment_utc


def next_fire_time(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time ``cron`` fires after ``after`` (UTC)."""
    for moment in due_times(cron, timezone, after, after + timedelta(days=366 * _HORIZON_YEARS)):
        return moment
    raise InvalidArtifactError(f"cron {cron!r} never fires", field=_FIELD)
