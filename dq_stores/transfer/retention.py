"""Retention: deleting job runs older than a cutoff (record first, then its result payload), with
durations that never guess a unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from dq_stores.base import JobRunStore
from dq_stores.canonical import format_timestamp
from dq_stores.errors import InvalidArtifactError
from dq_stores.scope import Scope

__all__ = ["PurgeOutcome", "parse_duration", "purge_runs"]

_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")
_UNITS = {
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
    "d": "days",
    "day": "days",
    "days": "days",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
}
_AMBIGUOUS = {
    "m": "'m' could mean minutes or months: write 'min' for minutes, or days (e.g. 180d)",
    "mo": "months have no fixed length: give days (e.g. 180d)",
    "month": "months have no fixed length: give days (e.g. 180d)",
    "months": "months have no fixed length: give days (e.g. 180d)",
    "y": "years have no fixed length: give days (e.g. 365d)",
    "year": "years have no fixed length: give days (e.g. 365d)",
    "years": "years have no fixed length: give days (e.g. 365d)",
}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90min``, ``2w``, ``45s`` or combinations (``1d12h``); must be positive.

    Every number needs an explicit unit; ``m`` (minutes or months?), months and years are refused
    rather than guessed: this feeds a delete command.
    """
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise InvalidArtifactError(
            f"invalid duration {text!r}: use numbers with units, e.g. 365d, 12h, 90min, 2w "
            "(units: w, d, h, min, s)",
            field="older_than",
        )
    total = timedelta()
    for number, unit in parts:
        if unit in _AMBIGUOUS:
            raise InvalidArtifactError(f"ambiguous duration {text!r}: {_AMBIGUOUS[unit]}", field="older_than")
        if unit not in _UNITS:
            raise InvalidArtifactError(
                f"invalid duration {text!r}: unknown unit {unit!r} (units: w, d, h, min, s)",
                field="older_than",
            )
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0):
        raise InvalidArtifactError(f"duration {text!r} must be positive", field="older_than")
    return total


@dataclass(frozen=True)
class PurgeOutcome:
    """One job run older than the cutoff: deleted, or (dry run) would be deleted; ``result`` says
    what happened to its result (``None``: it had none).
    """

    scope: Scope
    job_id: str
    run_time: datetime | None
    had_result: bool
    deleted: bool
    result: str | None = None

    def __str__(self) -> str:
        when = format_timestamp(self.run_time) if self.run_time else "no run time"
        verb = "deleted" if self.deleted else "would delete"
        text = f"{verb} job run {self.scope}/{self.job_id} ({when})"
        if self.result is not None:
            text += f"; result: {self.result}"
        elif self.had_result:
            text += " with its result"
        return text


def purge_runs(
    store: JobRunStore, scope: Scope, cutoff: datetime, *, dry_run: bool = False
) -> Iterator[PurgeOutcome]:
    """Delete the runs of ``scope`` whose run time is before ``cutoff`` (the store's ``until``
    filter), page by page; yield each. Record first, then its result payload (``purge_run``), so
    no record ever points at a deleted payload; a crash in between leaves at most an orphan
    payload for ``gc_payloads``. A payload this store did not write is left in place, and the
    outcome says so.
    """
    cursor: str | None = None
    while True:
        page = store.list(scope.tenant, scope.environment, until=cutoff, limit=500, cursor=cursor)
        for run in page.items:
            if dry_run:
                yield PurgeOutcome(scope, run.job_id, run.sort_time, run.result is not None, False)
                continue
            purged = store.purge_run(scope.tenant, scope.environment, run.job_id)
            if not purged.deleted:
                continue  # removed by someone else meanwhile
            yield PurgeOutcome(scope, run.job_id, run.sort_time, run.result is not None, True, purged.result)
        # Keyset cursors stay valid after deleting the rows already passed.
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
