"""The actions' pure core: what a finished DQ run's outcome is (``classify``), which action
profile slots run for it, the settings that bound execution, and the facts every action is about.

Classification: ``failure`` when the orchestrator's run failed (or was cancelled: see
``dq_dagster.actions.sensors``), a job run failed, a validation report failed or has a failed
hard rule, or a hard profiling expectation was breached; ``anomaly`` when it succeeded but a job
run warned, a soft rule failed or a soft profiling expectation was breached; else ``success``. An anomaly is a success with a warning: ``on_success`` and ``on_anomaly`` both
run. No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dq_stores.errors import (
    InvalidArtifactError,
)
from dq_stores.models import (
    ActionProfileRef,
    ActionType,
    CleansingReport,
    JobDefinition,
    JobRun,
    JobRunStatus,
    ProfilingSnapshot,
    ReportStatus,
    Severity,
    ValidationReport,
)

__all__ = [
    "MAX_LISTED",
    "PAYLOAD_SCHEMA",
    "PRODUCER",
    "TICKET_SCHEMA",
    "ActionConfigError",
    "ActionEvent",
    "ActionSettings",
    "DQRunFacts",
    "NothingToDo",
    "Report",
    "classify",
    "slots_for",
]

Report = ValidationReport | CleansingReport | ProfilingSnapshot

PAYLOAD_SCHEMA = "dq.action.v1"
TICKET_SCHEMA = "dq.ticket.v1"
PRODUCER = "https://pypi.org/project/dq-stores/0.1.0#dq_dagster"
MAX_LISTED = 50
"""Failed rules / anomalies listed in a payload (the full lists are in the stored reports)."""
_MAX_ERROR = 500
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})
_DEFAULT_URL_ENV = {
    ActionType.SEND_NOTIFICATION: "DQ_ACTION_NOTIFICATION_URL",
    ActionType.OPEN_TICKET: "DQ_ACTION_TICKET_URL",
    ActionType.EMIT_LINEAGE: "OPENLINEAGE_URL",
}


class ActionEvent(StrEnum):
    """What happened to a DQ run, which decides the action profiles that run."""

    SUCCESS = "success"
    FAILURE = "failure"
    ANOMALY = "anomaly"


@dataclass(frozen=True)
class ActionSettings:
    """Bounds and policies of action execution (code-location config, not stored data).

    ``allowed_env``: fnmatch patterns of the environment variables a stored profile may name;
    ``{tenant}`` / ``{TENANT}`` stand for the tenant id as is / upper-cased with other characters
    as ``_`` (e.g. ``DQ_ACTION_{TENANT}_*`` keeps each tenant to its own variables).
    ``allowed_locations``: URL prefixes ``STORE_RESULTS`` may write under (same placeholders;
    ``None``: anywhere, each export still under its own ``<tenant>/<environment>/`` folder).
    """

    timeout_seconds: float = 5.0
    """Per HTTP attempt (connect and each read)."""
    max_attempts: int = 3
    backoff_seconds: float = 0.5
    """Delay before the 2nd attempt; doubles each time, capped by ``max_backoff_seconds``."""
    max_backoff_seconds: float = 4.0
    budget_seconds: float = 10.0
    """Wall time for all actions of one DQ run (they run concurrently); no attempt starts after it."""
    max_workers: int = 4
    allowed_env: tuple[str, ...] = ("DQ_ACTION_*", "OPENLINEAGE_URL", "OPENLINEAGE_API_KEY")
    allowed_locations: tuple[str, ...] | None = None
    store_location: str | None = None
    """Where ``STORE_RESULTS`` exports when its profile gives no ``location`` (else: skipped)."""
    dagster_url: str | None = None
    """Base URL of the Dagster UI, for a run link in payloads (e.g. ``http://localhost:3000``)."""
    producer: str = PRODUCER

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_attempts > 10:
            raise InvalidArtifactError("max_attempts must be between 1 and 10", field="max_attempts")
        for name in ("timeout_seconds", "budget_seconds"):
            if getattr(self, name) <= 0:
                raise InvalidArtifactError(f"{name} must be positive", field=name)
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise InvalidArtifactError("backoff must not be negative", field="backoff_seconds")
        if self.max_workers < 1:
            raise InvalidArtifactError("max_workers must be at least 1", field="max_workers")


@dataclass(frozen=True)
class DQRunFacts:
    """Everything the actions of one DQ run are about."""

    tenant: str
    environment: str
    job_definition: JobDefinition
    job_runs: tuple[JobRun, ...]
    reports: tuple[Report, ...]
    event: ActionEvent
    reasons: tuple[str, ...]
    occurred_at: datetime
    dagster_run_id: str | None = None
    dagster_job_name: str | None = None
    run_error: str | None = None
    input_uri: str | None = None

    @property
    def run_ref(self) -> str:
        """The DQ run's id: the Dagster run id, else the first job run id."""
        if self.dagster_run_id:
            return self.dagster_run_id
        return self.job_runs[0].job_id if self.job_runs else "no-run"

    @property
    def dataset_type(self) -> str | None:
        for item in (*self.reports, *self.job_runs):
            if item.dataset_type:
                return item.dataset_type
        return None


# -- classification -----------------------------------------------------------------------------


def classify(
    job_runs: Sequence[JobRun],
    reports: Sequence[Report],
    *,
    run_failed: bool = False,
    run_cancelled: bool = False,
) -> tuple[ActionEvent, list[str]]:
    """The event of a DQ run and the reasons for it (one line each). A cancelled run is a failure:
    its data was not (fully) checked.
    """
    failures: list[str] = []
    anomalies: list[str] = []
    if run_cancelled:
        failures.append("the Dagster run was cancelled")
    elif run_failed:
        failures.append("the Dagster run failed")
    for run in job_runs:
        status = JobRunStatus(run.status)
        if status is JobRunStatus.FAILED:
            failures.append(
                f"{run.job_type} job run {run.job_id} failed" + (f": {run.message}" if run.message else "")
            )
        elif status is JobRunStatus.WARNING:
            anomalies.append(
                f"{run.job_type} job run {run.job_id} warned" + (f": {run.message}" if run.message else "")
            )
    for report in reports:
        if isinstance(report, ValidationReport):
            hard = [r for r in report.failed_rules if Severity(r.severity) is Severity.HARD]
            soft = [r for r in report.failed_rules if Severity(r.severity) is Severity.SOFT]
            if ReportStatus(report.status) is ReportStatus.FAILED or hard:
                failures.append(f"validation: {len(hard)} hard rule(s) failed")
            if soft:
                anomalies.append(f"validation: {len(soft)} soft rule(s) breached")
        elif isinstance(report, ProfilingSnapshot) and report.anomalies:
            hard_breaches = [a for a in report.anomalies if Severity(a.severity) is Severity.HARD]
            if hard_breaches:
                failures.append(f"profiling: {len(hard_breaches)} hard expectation(s) breached")
            if len(hard_breaches) < len(report.anomalies):
                anomalies.append(
                    f"profiling: {len(report.anomalies) - len(hard_breaches)} expectation(s) breached"
                )
    if failures:
        return ActionEvent.FAILURE, _unique(failures)
    if anomalies:
        return ActionEvent.ANOMALY, _unique(anomalies)
    return ActionEvent.SUCCESS, ["every job run succeeded"]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def slots_for(definition: JobDefinition, event: ActionEvent) -> list[tuple[str, ActionProfileRef]]:
    """(slot, profile reference) pairs that run for ``event``; a profile named twice runs once.

    An anomaly is a success with a warning: ``on_success`` runs (e.g. to store results) and
    ``on_anomaly`` too.
    """
    wanted = {
        ActionEvent.SUCCESS: ("on_success",),
        ActionEvent.ANOMALY: ("on_success", "on_anomaly"),
        ActionEvent.FAILURE: ("on_failure",),
    }[event]
    slots: list[tuple[str, ActionProfileRef]] = []
    seen: set[tuple[str, str | None]] = set()
    for slot in wanted:
        ref: ActionProfileRef | None = getattr(definition, slot)
        if ref is None or (ref.action_profile_id, ref.version) in seen:
            continue
        seen.add((ref.action_profile_id, ref.version))
        slots.append((slot, ref))
    return slots


class ActionConfigError(Exception):
    """The action's parameters or the environment are wrong: failed without any attempt."""


class NothingToDo(Exception):
    """The action has no target configured (e.g. no notification endpoint): skipped."""
