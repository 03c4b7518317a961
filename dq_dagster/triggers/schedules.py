"""The schedule trigger's pure core: which cron times of the stored SCHEDULED job definitions came
due since the sensor's cursor, and the run each asks for (``evaluate_schedules``).

Cron times come from ``dq_dagster.triggers.cron`` (croniter, Dagster's DST rules). No Dagster
import here; ``dq_dagster.triggers.sensors`` wraps this in a sensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dq_dagster.triggers.cron import due_times
from dq_dagster.triggers.request import (
    Evaluation,
    PlannedRun,
    _dump_cursor,
    _iso,
    _load_cursor,
    _parse_iso,
    _state_key,
    definitions_per_tenant,
    resolve_contract,
)
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.models import ScheduledTrigger, TriggerType
from dq_stores.secrets import redact
from dq_stores.stores import Stores

__all__ = ["evaluate_schedules", "schedule_run_key"]


def evaluate_schedules(
    stores: Stores,
    tenants: Sequence[str],
    environment: str,
    cursor: str | None,
    now: datetime,
    *,
    max_catchup: int = 5,
) -> Evaluation:
    """One tick of the schedule sensor, without Dagster.

    Cursor: per definition (tenant/environment/id), the time up to which it was evaluated. A
    definition seen for the first time starts at ``now`` (no backfill of history); one that is no
    longer active loses its entry (re-activating it starts afresh, without catching up on the
    paused period). A cron change applies from the last evaluated time. When more than
    ``max_catchup`` times came due (the sensor was stopped), only the latest ``max_catchup`` are
    requested and a warning says how many were skipped.
    """
    if max_catchup < 1:
        raise InvalidArtifactError("max_catchup must be at least 1", field="max_catchup")
    now = now.astimezone(UTC)
    warnings: list[str] = []
    notes: list[str] = []
    old = _load_cursor(cursor, warnings)
    new: dict[str, Any] = {}
    runs: list[PlannedRun] = []
    for tenant, definitions in definitions_per_tenant(
        stores, tenants, environment, TriggerType.SCHEDULED, old_cursor=old, new_cursor=new, warnings=warnings
    ):
        for definition in definitions:
            trigger = definition.trigger
            assert isinstance(trigger, ScheduledTrigger)
            key = _state_key(tenant, environment, definition.job_definition_id)
            last = _parse_iso(old.get(key))
            what = f"job definition {key}@{definition.version}"
            new[key] = _iso(now)
            if last is None:
                notes.append(
                    f"{what}: first seen; runs from the next '{trigger.cron}' ({trigger.timezone}) time on"
                )
                continue
            if last > now:
                new[key] = _iso(last)  # the clock went backwards: never re-run a time already past
                continue
            try:
                due = list(due_times(trigger.cron, trigger.timezone, last, now))
            except InvalidArtifactError as exc:
                warnings.append(f"{what}: skipped: {exc}")
                continue
            if not due:
                continue
            try:
                resolved = resolve_contract(stores, definition)
            except StoreError as exc:
                times = ", ".join(_iso(t) for t in due[:3]) + (" ..." if len(due) > 3 else "")
                warnings.append(f"{what}: skipped scheduled time(s) {times}: {redact(str(exc))}")
                continue
            if len(due) > max_catchup:
                warnings.append(
                    f"{what}: {len(due)} scheduled times came due; requesting the latest {max_catchup}, "
                    f"skipping {len(due) - max_catchup} (oldest: {_iso(due[0])})"
                )
                due = due[-max_catchup:]
            for moment in due:
                request = resolved.request(TriggerType.SCHEDULED.value, scheduled_time=moment)
                runs.append(
                    PlannedRun(
                        schedule_run_key(tenant, environment, definition.job_definition_id, moment), request
                    )
                )
    dropped = sorted(set(old) - set(new))
    if dropped:
        notes.append(
            f"no longer scheduled (paused, retired, removed or another trigger): {', '.join(dropped)}"
        )
    return Evaluation(runs, _dump_cursor(new), warnings, notes)


def schedule_run_key(tenant: str, environment: str, job_definition_id: str, moment: datetime) -> str:
    """``dq-schedule:<tenant>:<env>:<id>:<UTC time>``. The definition's version is left out on
    purpose: a scheduled time runs once even if the definition changed version in between.
    """
    return f"dq-schedule:{tenant}:{environment}:{job_definition_id}:{_iso(moment)}"
