"""Stored job definitions drive Dagster runs: schedules and blob events without a redeploy.

What lives here:

* ``build_job_definition_sensor``: ONE sensor per code location for every ``SCHEDULED`` job
  definition of the configured tenants. At each tick it reads the definitions from the store, works
  out which cron times (cron + timezone of the definition) came due since its cursor, and asks for
  one run per due (definition, time). Adding, changing, pausing (status other than ``active``) or
  retiring a definition takes effect at the next tick: nothing about a definition is baked into the
  code location.
* ``build_blob_event_sensor``: the same for ``EXTERNAL_EVENT`` definitions whose ``event_source``
  is Azure Blob (``azure_blob_event_grid``): it lists the container named in ``event_filter``
  and asks for one run per new blob matching ``event_filter.path_pattern``, honouring the
  definition's ``idempotency_scope``. ``read_raw_blob`` reads such a blob (CSV or Parquet) in the
  run.
* ``JobDefinitionRunConfig``: the run config of a ``MANUAL`` run (tenant, environment, job
  definition id), and ``dq_run_request`` that tells a running op/asset which definition, tenant,
  job types (and blob) it serves, from that config or from the tags the sensors set.
* The plain logic underneath (``evaluate_schedules``, ``evaluate_blob_events``, ``due_times``,
  ``resolve_job_definition``) imports no Dagster type and is tested without a Dagster instance.

Which definition runs: per job definition id, the highest version whose status is ``active``
(a draft 2.0.0 does not stop an active 1.0.0; to pause a job set every active version to
``draft``, or retire it). A definition whose contract reference does not resolve is skipped with a
warning in the tick log, never a crash, and the other definitions still run.

What must not live here: store logic (``dq_stores``), the DQ engine, the actions that follow a run
(``dq_dagster.actions``), and any secret (blob credentials come from environment variables named
by the caller, read at tick time).
"""

# No ``from __future__ import annotations``: Dagster reads ``JobDefinitionRunConfig``'s
# annotations at runtime.

import fnmatch
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from dagster import (
    AssetKey,
    Config,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string
from pydantic import Field

from dq_stores.errors import InvalidArtifactError, NotFoundError, StoreError
from dq_stores.models import (
    DataContract,
    DatasetContract,
    ExternalEventTrigger,
    JobDefinition,
    JobDefinitionStatus,
    JobType,
    ScheduledTrigger,
    TriggerType,
)
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.versions import version_key

if TYPE_CHECKING:
    import polars as pl

    from dq_stores.blob_client import BlobConnection

__all__ = [
    "ALL_JOB_TYPES",
    "BLOB_EVENT_SOURCES",
    "TAG_BLOB_CONTAINER",
    "TAG_BLOB_ETAG",
    "TAG_BLOB_NAME",
    "TAG_BLOB_URI",
    "TAG_CONTRACT_ID",
    "TAG_CONTRACT_VERSION",
    "TAG_DATASET_CONTRACT_ID",
    "TAG_ENVIRONMENT",
    "TAG_JOB_DEFINITION_ID",
    "TAG_JOB_DEFINITION_VERSION",
    "TAG_JOB_TYPES",
    "TAG_SCHEDULED_TIME",
    "TAG_TENANT",
    "TAG_TRIGGER",
    "BlobItem",
    "BlobSource",
    "DQRunRequest",
    "Evaluation",
    "JobDefinitionRunConfig",
    "PlannedRun",
    "ResolvedJobDefinition",
    "active_definitions",
    "build_blob_event_sensor",
    "build_job_definition_sensor",
    "dq_run_request",
    "due_times",
    "evaluate_blob_events",
    "evaluate_schedules",
    "manual_run_config",
    "read_raw_blob",
    "resolve_contract",
    "resolve_job_definition",
    "tenant_partition_key",
]

TAG_TENANT = "dq/tenant"
TAG_ENVIRONMENT = "dq/environment"
TAG_JOB_DEFINITION_ID = "dq/job_definition_id"
TAG_JOB_DEFINITION_VERSION = "dq/job_definition_version"
TAG_JOB_TYPES = "dq/job_types"
"""Comma-separated job types the run must perform (``validation,cleansing,profiling``)."""
TAG_TRIGGER = "dq/trigger"
TAG_SCHEDULED_TIME = "dq/scheduled_time"
TAG_CONTRACT_ID = "dq/contract_id"
TAG_CONTRACT_VERSION = "dq/contract_version"
TAG_DATASET_CONTRACT_ID = "dq/dataset_contract_id"
TAG_BLOB_URI = "dq/blob_uri"
TAG_BLOB_ETAG = "dq/blob_etag"
TAG_BLOB_CONTAINER = "dq/blob_container"
TAG_BLOB_NAME = "dq/blob_name"

ALL_JOB_TYPES: tuple[JobType, ...] = (JobType.CLEANSING, JobType.PROFILING, JobType.VALIDATION)
"""What a definition without ``job_types`` runs."""

BLOB_EVENT_SOURCES = frozenset({"azure_blob_event_grid", "azure_blob"})
"""``event_source`` values the blob sensor serves; other event sources are left to other sensors."""

_CURSOR_VERSION = 1
_DEFAULT_LOOKBACK = timedelta(seconds=60)
_BLOB_SCOPES = {
    None: "version",
    "per_blob_version": "version",
    "per_blob_etag": "version",
    "per_blob_uri": "uri",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state_key(tenant: str, environment: str, job_definition_id: str) -> str:
    # Ids cannot hold '/', so the key is unambiguous.
    return f"{tenant}/{environment}/{job_definition_id}"


# -- what a run is for --------------------------------------------------------------------------


@dataclass(frozen=True)
class DQRunRequest:
    """What a DQ run is for: the tenant, environment, job definition and job types (and, for a
    blob event, the blob). Travels as run tags (``tags()`` / ``from_tags``) so every op or asset
    of the run, the UI and the action sensor see it.
    """

    tenant: str
    environment: str
    job_definition_id: str
    job_definition_version: str | None = None
    job_types: tuple[JobType, ...] = ALL_JOB_TYPES
    trigger: str = TriggerType.MANUAL.value
    scheduled_time: datetime | None = None
    contract_id: str | None = None
    contract_version: str | None = None
    dataset_contract_id: str | None = None
    blob_uri: str | None = None
    blob_etag: str | None = None
    blob_container: str | None = None
    blob_name: str | None = None

    def __post_init__(self) -> None:
        Scope(self.tenant, self.environment)
        validate_id(self.job_definition_id, "job_definition_id")
        if self.job_definition_version is not None:
            validate_id(self.job_definition_version, "job_definition_version")

    def runs(self, job_type: JobType | str) -> bool:
        """Whether this run must perform ``job_type`` (a profiling-only definition skips the rest)."""
        return JobType(job_type) in self.job_types

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_TENANT: self.tenant,
            TAG_ENVIRONMENT: self.environment,
            TAG_JOB_DEFINITION_ID: self.job_definition_id,
            TAG_JOB_TYPES: ",".join(JobType(t).value for t in self.job_types),
            TAG_TRIGGER: self.trigger,
        }
        optional = {
            TAG_JOB_DEFINITION_VERSION: self.job_definition_version,
            TAG_SCHEDULED_TIME: _iso(self.scheduled_time) if self.scheduled_time else None,
            TAG_CONTRACT_ID: self.contract_id,
            TAG_CONTRACT_VERSION: self.contract_version,
            TAG_DATASET_CONTRACT_ID: self.dataset_contract_id,
            TAG_BLOB_URI: self.blob_uri,
            TAG_BLOB_ETAG: self.blob_etag,
            TAG_BLOB_CONTAINER: self.blob_container,
            TAG_BLOB_NAME: self.blob_name,
        }
        tags.update({k: v for k, v in optional.items() if v is not None})
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "DQRunRequest | None":
        """The request a run's tags describe; ``None`` when they name no job definition.
        Raises ``InvalidArtifactError`` for tags that are present but invalid.
        """
        if TAG_JOB_DEFINITION_ID not in tags or TAG_TENANT not in tags or TAG_ENVIRONMENT not in tags:
            return None
        return cls(
            tenant=tags[TAG_TENANT],
            environment=tags[TAG_ENVIRONMENT],
            job_definition_id=tags[TAG_JOB_DEFINITION_ID],
            job_definition_version=tags.get(TAG_JOB_DEFINITION_VERSION),
            job_types=_parse_job_types(tags.get(TAG_JOB_TYPES)),
            trigger=tags.get(TAG_TRIGGER, TriggerType.MANUAL.value),
            scheduled_time=_parse_iso(tags.get(TAG_SCHEDULED_TIME)),
            contract_id=tags.get(TAG_CONTRACT_ID),
            contract_version=tags.get(TAG_CONTRACT_VERSION),
            dataset_contract_id=tags.get(TAG_DATASET_CONTRACT_ID),
            blob_uri=tags.get(TAG_BLOB_URI),
            blob_etag=tags.get(TAG_BLOB_ETAG),
            blob_container=tags.get(TAG_BLOB_CONTAINER),
            blob_name=tags.get(TAG_BLOB_NAME),
        )


def _parse_job_types(value: str | None) -> tuple[JobType, ...]:
    if not value:
        return ALL_JOB_TYPES
    try:
        return tuple(sorted({JobType(part.strip()) for part in value.split(",") if part.strip()}))
    except ValueError as exc:
        raise InvalidArtifactError(
            f"tag {TAG_JOB_TYPES} {value!r} names an unknown job type", field=TAG_JOB_TYPES
        ) from exc


def _job_types(definition: JobDefinition) -> tuple[JobType, ...]:
    if not definition.job_types:
        return ALL_JOB_TYPES
    return tuple(sorted({JobType(t) for t in definition.job_types}))


# -- resolving definitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedJobDefinition:
    """A job definition with the contract (and dataset contract) it references, all found."""

    definition: JobDefinition
    contract: DataContract
    dataset: DatasetContract | None

    @property
    def job_types(self) -> tuple[JobType, ...]:
        return _job_types(self.definition)

    def request(self, trigger: str | None = None, **fields: Any) -> DQRunRequest:
        """The ``DQRunRequest`` of a run of this definition (``fields``: blob or scheduled time)."""
        d = self.definition
        return DQRunRequest(
            tenant=d.tenant_id,
            environment=d.environment,
            job_definition_id=d.job_definition_id,
            job_definition_version=d.version,
            job_types=self.job_types,
            trigger=trigger or TriggerType(d.trigger.trigger_type).value,
            contract_id=self.contract.contract_id,
            contract_version=self.contract.version,
            dataset_contract_id=self.dataset.dataset_contract_id if self.dataset else None,
            **fields,
        )


def resolve_contract(stores: Stores, definition: JobDefinition) -> ResolvedJobDefinition:
    """The contract (pinned version, else the latest) and dataset contract ``definition`` names.

    Raises ``NotFoundError`` with a message naming the definition and the missing reference.
    """
    ref = definition.data_contract
    what = f"job definition {definition.job_definition_id}@{definition.version}"
    scope = f"{definition.tenant_id}/{definition.environment}"
    contract = stores.contracts.get(
        definition.tenant_id, definition.environment, ref.contract_id, ref.version
    )
    if contract is None:
        pinned = f"@{ref.version}" if ref.version else " (latest)"
        raise NotFoundError(f"{what}: contract {ref.contract_id}{pinned} does not exist in {scope}")
    if contract.is_retired:
        raise NotFoundError(f"{what}: contract {ref.contract_id}@{contract.version} is retired in {scope}")
    dataset: DatasetContract | None = None
    if ref.dataset_contract_id is not None:
        dataset = next(
            (ds for ds in contract.datasets if ds.dataset_contract_id == ref.dataset_contract_id), None
        )
        if dataset is None:
            raise NotFoundError(
                f"{what}: contract {ref.contract_id}@{contract.version} has no dataset contract "
                f"{ref.dataset_contract_id}"
            )
    elif len(contract.datasets) == 1:
        dataset = contract.datasets[0]
    return ResolvedJobDefinition(definition, contract, dataset)


def resolve_job_definition(
    stores: Stores,
    tenant: str,
    environment: str,
    job_definition_id: str,
    version: str | None = None,
) -> ResolvedJobDefinition:
    """The job definition (``version``, else the latest) with its contract; ``NotFoundError`` when
    the definition or its contract is missing, or the definition is retired.
    """
    definition = stores.job_definitions.get(tenant, environment, job_definition_id, version)
    if definition is None:
        pinned = f"@{version}" if version else " (latest)"
        raise NotFoundError(
            f"job definition {job_definition_id}{pinned} does not exist in {tenant}/{environment}"
        )
    if definition.is_retired:
        raise NotFoundError(
            f"job definition {job_definition_id}@{definition.version} is retired in {tenant}/{environment}"
        )
    return resolve_contract(stores, definition)


def active_definitions(
    stores: Stores, tenant: str, environment: str, trigger_type: TriggerType | None = None
) -> list[JobDefinition]:
    """Per job definition id, the highest version whose status is ``active`` (optionally only
    those whose trigger is ``trigger_type``), ordered by id.
    """
    best: dict[str, JobDefinition] = {}
    for definition in stores.job_definitions.iter_all(
        tenant, environment, status=JobDefinitionStatus.ACTIVE.value
    ):
        current = best.get(definition.job_definition_id)
        if current is None or version_key(definition.version) > version_key(current.version):
            best[definition.job_definition_id] = definition
    chosen = [best[k] for k in sorted(best)]
    if trigger_type is None:
        return chosen
    return [d for d in chosen if d.trigger.trigger_type == trigger_type]


# -- the outcome of one evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One run a sensor asks for: its run key (the same due time or blob always gives the same
    key, so Dagster never launches it twice) and what it is for.
    """

    run_key: str
    request: DQRunRequest


@dataclass
class Evaluation:
    """What one tick decided: runs to request, the new cursor, and messages for the tick log."""

    runs: list[PlannedRun]
    cursor: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load_cursor(cursor: str | None, warnings: list[str]) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = None
    if (
        not isinstance(data, dict)
        or data.get("v") != _CURSOR_VERSION
        or not isinstance(data.get("defs"), dict)
    ):
        warnings.append(
            "the sensor cursor is not one this sensor wrote; starting afresh from now (no backfill)"
        )
        return {}
    defs: dict[str, Any] = data["defs"]
    return defs


def _dump_cursor(defs: Mapping[str, Any]) -> str:
    return json.dumps(
        {"v": _CURSOR_VERSION, "defs": dict(sorted(defs.items()))}, separators=(",", ":"), sort_keys=True
    )


# -- schedules ----------------------------------------------------------------------------------


def due_times(cron: str, timezone: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """The times ``cron`` (in ``timezone``) fires strictly after ``after`` and up to ``until``
    (inclusive), in UTC, oldest first. Raises ``InvalidArtifactError`` for a cron expression
    Dagster cannot schedule or one that never fires.
    """
    if not is_valid_cron_string(cron):
        raise InvalidArtifactError(f"cron {cron!r} is not a valid cron expression", field="trigger.cron")
    iterator = cron_string_iterator(after.timestamp(), cron, timezone)
    while True:
        try:
            moment = next(iterator)
        except (StopIteration, ValueError, KeyError) as exc:
            # croniter's CroniterBadDateError (e.g. "0 0 31 4 *") is a ValueError subclass.
            raise InvalidArtifactError(f"cron {cron!r} never fires", field="trigger.cron") from exc
        moment = moment.astimezone(UTC)
        if moment <= after:
            continue
        if moment > until:
            return
        yield moment


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
    for tenant in tenants:
        try:
            definitions = active_definitions(stores, tenant, environment, TriggerType.SCHEDULED)
        except StoreError as exc:
            # Keep this tenant's cursor entries: its definitions resume where they were next tick.
            warnings.append(
                f"tenant {tenant}/{environment}: cannot read job definitions ({redact(str(exc))})"
            )
            prefix = f"{tenant}/{environment}/"
            new.update({k: v for k, v in old.items() if k.startswith(prefix)})
            continue
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


# -- blob events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobItem:
    """One listed blob: its name in the container, etag, last-modified time and URI (no SAS)."""

    container: str
    name: str
    etag: str
    last_modified: datetime
    uri: str


BlobLister = Callable[[str, str, str], Iterable[BlobItem]]
"""``(tenant, container, name_prefix) -> blobs``; raises ``StoreError`` when it cannot list."""


def _literal_prefix(pattern: str) -> str:
    cut = len(pattern)
    for special in "*?[":
        index = pattern.find(special)
        if index != -1:
            cut = min(cut, index)
    return pattern[:cut]


def blob_run_key(tenant: str, environment: str, job_definition_id: str, blob: BlobItem, scope: str) -> str:
    """``dq-blob:<tenant>:<env>:<id>:<uri>`` for ``per_blob_uri`` (the blob runs once, whatever is
    written to it later), with ``@<etag>`` appended otherwise (each new content runs once).
    """
    suffix = "" if scope == "uri" else f"@{blob.etag}"
    return f"dq-blob:{tenant}:{environment}:{job_definition_id}:{blob.uri}{suffix}"


def evaluate_blob_events(
    stores: Stores,
    tenants: Sequence[str],
    environment: str,
    cursor: str | None,
    list_blobs: BlobLister,
    *,
    allows: Callable[[str, str], bool] = lambda tenant, container: True,
    lookback: timedelta = _DEFAULT_LOOKBACK,
    max_runs_per_definition: int = 100,
) -> Evaluation:
    """One tick of the blob sensor, without Dagster.

    Per definition the cursor keeps a watermark (the newest last-modified time acted on) and the
    blobs seen within ``lookback`` of it, so a blob committed in the same second as, or slightly
    before, one already seen is still caught, and none is requested twice. A definition seen for
    the first time (or whose container / pattern / idempotency scope changed) takes the blobs
    already there as its baseline: they are not run unless ``event_filter.process_existing`` is
    true. At most ``max_runs_per_definition`` blobs per definition per tick, oldest first; the
    rest follow at the next tick. ``allows(tenant, container)`` refuses containers a tenant may
    not read.
    """
    warnings: list[str] = []
    notes: list[str] = []
    old = _load_cursor(cursor, warnings)
    new: dict[str, Any] = {}
    runs: list[PlannedRun] = []
    for tenant in tenants:
        try:
            definitions = active_definitions(stores, tenant, environment, TriggerType.EXTERNAL_EVENT)
        except StoreError as exc:
            warnings.append(
                f"tenant {tenant}/{environment}: cannot read job definitions ({redact(str(exc))})"
            )
            prefix = f"{tenant}/{environment}/"
            new.update({k: v for k, v in old.items() if k.startswith(prefix)})
            continue
        for definition in definitions:
            trigger = definition.trigger
            assert isinstance(trigger, ExternalEventTrigger)
            if trigger.event_source not in BLOB_EVENT_SOURCES:
                continue
            key = _state_key(tenant, environment, definition.job_definition_id)
            what = f"job definition {key}@{definition.version}"
            planned, state = _evaluate_blob_definition(
                stores,
                definition,
                old.get(key),
                list_blobs,
                allows,
                lookback,
                max_runs_per_definition,
                what,
                warnings,
                notes,
            )
            if state is not None:
                new[key] = state
            runs.extend(planned)
    dropped = sorted(set(old) - set(new))
    if dropped:
        notes.append(f"no longer watching (paused, retired, removed or misconfigured): {', '.join(dropped)}")
    return Evaluation(runs, _dump_cursor(new), warnings, notes)


def _evaluate_blob_definition(
    stores: Stores,
    definition: JobDefinition,
    previous: Any,
    list_blobs: BlobLister,
    allows: Callable[[str, str], bool],
    lookback: timedelta,
    limit: int,
    what: str,
    warnings: list[str],
    notes: list[str],
) -> tuple[list[PlannedRun], dict[str, Any] | None]:
    trigger = definition.trigger
    assert isinstance(trigger, ExternalEventTrigger)
    tenant, environment = definition.tenant_id, definition.environment
    event_filter = trigger.event_filter
    container = event_filter.get("container")
    pattern = event_filter.get("path_pattern", "*")
    if not isinstance(container, str) or not container:
        warnings.append(f"{what}: skipped: event_filter.container is missing")
        return [], None
    if not isinstance(pattern, str) or not pattern:
        warnings.append(f"{what}: skipped: event_filter.path_pattern must be a non-empty string")
        return [], None
    scope = _BLOB_SCOPES.get(definition.idempotency_scope)
    if scope is None:
        known = ", ".join(sorted(k for k in _BLOB_SCOPES if k))
        warnings.append(
            f"{what}: skipped: idempotency_scope {definition.idempotency_scope!r} is not one of {known}"
        )
        return [], None
    if not allows(tenant, container):
        warnings.append(f"{what}: skipped: tenant {tenant} may not read container {container!r}")
        return [], None
    signature = hashlib.sha256(f"{container}\x00{pattern}\x00{scope}".encode()).hexdigest()[:16]
    state = previous if isinstance(previous, dict) and previous.get("f") == signature else None
    if previous is not None and state is None:
        notes.append(f"{what}: container, pattern or idempotency scope changed; taking a new baseline")
    try:
        listed = [
            b
            for b in list_blobs(tenant, container, _literal_prefix(pattern))
            if fnmatch.fnmatchcase(b.name, pattern)
        ]
    except StoreError as exc:
        warnings.append(f"{what}: cannot list container {container!r}: {redact(str(exc))}")
        return [], previous if isinstance(previous, dict) else None

    def seen_key(blob: BlobItem) -> str:
        return blob.name if scope == "uri" else f"{blob.name}@{blob.etag}"

    if state is None and not event_filter.get("process_existing", False):
        # Baseline: what is already there is not new.
        watermark = max((b.last_modified for b in listed), default=None)
        seen = {
            seen_key(b): _iso(b.last_modified)
            for b in listed
            if watermark and b.last_modified >= watermark - lookback
        }
        notes.append(
            f"{what}: watching {container}/{pattern}; {len(listed)} existing blob(s) taken as baseline"
        )
        return [], {"f": signature, "wm": _iso(watermark) if watermark else None, "seen": seen}
    if state is None:
        state = {"f": signature, "wm": None, "seen": {}}
    watermark = _parse_iso(state.get("wm"))
    seen = dict(state.get("seen") or {})
    fresh = sorted(
        (
            b
            for b in listed
            if (watermark is None or b.last_modified > watermark - lookback) and seen_key(b) not in seen
        ),
        key=lambda b: (b.last_modified, b.name),
    )
    if len(fresh) > limit:
        notes.append(f"{what}: {len(fresh)} new blobs; requesting the oldest {limit} now, the rest next tick")
        fresh = fresh[:limit]
    planned: list[PlannedRun] = []
    if fresh:
        try:
            resolved = resolve_contract(stores, definition)
        except StoreError as exc:
            # Not marked as seen: once the contract exists again these blobs still run.
            warnings.append(f"{what}: {len(fresh)} new blob(s) not run: {redact(str(exc))}")
            return [], state
        for blob in fresh:
            request = resolved.request(
                TriggerType.EXTERNAL_EVENT.value,
                blob_uri=blob.uri,
                blob_etag=blob.etag,
                blob_container=blob.container,
                blob_name=blob.name,
            )
            planned.append(
                PlannedRun(
                    blob_run_key(tenant, environment, definition.job_definition_id, blob, scope), request
                )
            )
            seen[seen_key(blob)] = _iso(blob.last_modified)
            if watermark is None or blob.last_modified > watermark:
                watermark = blob.last_modified
    if watermark is not None:
        floor = watermark - lookback
        seen = {k: v for k, v in seen.items() if (_parse_iso(v) or floor) >= floor}
    return planned, {
        "f": signature,
        "wm": _iso(watermark) if watermark else None,
        "seen": dict(sorted(seen.items())),
    }


@dataclass(frozen=True)
class BlobSource:
    """Where a tenant's event blobs live and how to reach them; holds no secret, only the name of
    the environment variable with the connection string (read when a tick or run connects).

    ``connection_string_env`` wins when that variable is set; otherwise ``account_url`` with
    ``DefaultAzureCredential`` (managed identity, workload identity, Azure CLI). ``containers``
    lists the containers this source may be used for (``None``: any): a job definition of a tenant
    naming another container is skipped, so no tenant can make the sensor read another's data.
    """

    connection_string_env: str | None = "AZURE_STORAGE_CONNECTION_STRING"
    account_url: str | None = None
    containers: tuple[str, ...] | None = None
    timeout_seconds: int = 20

    def allows(self, container: str) -> bool:
        return self.containers is None or container in self.containers

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            # Fail fast: the SDK's storage retry policy waits 15 s before its first retry (about a
            # minute with its defaults), longer than a sensor tick may take. A failed listing is
            # simply tried again at the next tick.
            "retry_total": 0,
            "connection_timeout": self.timeout_seconds,
            "read_timeout": self.timeout_seconds,
        }
        connection_string = os.environ.get(self.connection_string_env) if self.connection_string_env else None
        if connection_string:
            options["connection_string"] = connection_string
        elif self.account_url:
            options["account_url"] = self.account_url
        else:
            raise InvalidArtifactError(
                f"no blob account: set {self.connection_string_env or 'a connection string variable'} "
                "or give BlobSource(account_url=...)",
                field="connection_string_env",
            )
        return options

    def connect(self, container: str) -> "BlobConnection":
        """A ``dq_stores.blob_client.BlobConnection`` to ``container`` (close it when done)."""
        from dq_stores.blob_client import connect_container

        return connect_container(container=container, **self._options())

    def read(
        self,
        uri: str,
        *,
        etag: str | None = None,
        fmt: Literal["csv", "parquet"] | None = None,
        **csv_options: Any,
    ) -> "pl.DataFrame":
        """``read_raw_blob`` with this source's credentials."""
        return read_raw_blob(uri, self, etag=etag, fmt=fmt, **csv_options)


def _list_with(connection: "BlobConnection", container: str, prefix: str) -> Iterator[BlobItem]:
    from dq_stores.blob_client import azure_errors

    base = connection.base_url
    with azure_errors(f"list blobs under {prefix!r}", location=connection.display):
        for props in connection.container.list_blobs(name_starts_with=prefix or None):
            modified = props.last_modified
            if modified is None:
                continue
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            yield BlobItem(
                container=container,
                name=str(props.name),
                etag=str(props.etag).strip('"'),
                last_modified=modified.astimezone(UTC),
                uri=f"{base}/{quote(str(props.name), safe='/~')}",
            )


def read_raw_blob(
    uri: str,
    credentials: "BlobSource | str | None" = None,
    *,
    etag: str | None = None,
    fmt: Literal["csv", "parquet"] | None = None,
    **csv_options: Any,
) -> "pl.DataFrame":
    """Read the blob at ``uri`` (a URI the blob sensor put in ``dq/blob_uri``) into a polars frame.

    ``credentials``: a ``BlobSource``, a connection string, or ``None`` for
    ``BlobSource()`` (``AZURE_STORAGE_CONNECTION_STRING``). ``etag`` makes the read fail with
    ``ConflictError`` if the blob changed since the sensor saw it (so a run reads exactly the
    content it was started for). The format comes from ``fmt``, else the name (``.csv``,
    ``.csv.gz``, ``.parquet``, ``.pq``), else the blob's content type. ``csv_options`` go to
    ``polars.read_csv``. The blob is read whole into memory.
    """
    import polars as pl
    from azure.core import MatchConditions

    from dq_stores.blob_client import azure_errors

    source = credentials if isinstance(credentials, BlobSource) else BlobSource()
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidArtifactError(
            f"blob URI must be an http(s) URL, got {redact(uri)[:200]!r}", field="blob_uri"
        )
    if parts.query:
        raise InvalidArtifactError(
            "blob URI must not carry a query (a SAS token belongs in the credentials)", field="blob_uri"
        )
    options = source._options() if not isinstance(credentials, str) else {"connection_string": credentials}
    # The container is the first path segment after the account endpoint (which for the emulator
    # carries the account name in its path).
    from azure.storage.blob import BlobServiceClient

    with azure_errors("open blob service"):
        if "connection_string" in options:
            service = BlobServiceClient.from_connection_string(options["connection_string"], retry_total=2)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(
                str(options["account_url"]), credential=DefaultAzureCredential(), retry_total=2
            )
    with service:
        endpoint = urlsplit(service.url)
        base_path = endpoint.path.rstrip("/") + "/"
        if (parts.scheme, parts.netloc) != (endpoint.scheme, endpoint.netloc) or not parts.path.startswith(
            base_path
        ):
            raise InvalidArtifactError(
                f"blob {parts.netloc}{parts.path[:120]} is not in the account these credentials open",
                field="blob_uri",
            )
        container, _, name = unquote(parts.path[len(base_path) :]).partition("/")
        if not container or not name:
            raise InvalidArtifactError("blob URI must name a container and a blob", field="blob_uri")
        if isinstance(credentials, BlobSource) and not credentials.allows(container):
            raise InvalidArtifactError(
                f"container {container!r} is not one this source may read", field="blob_uri"
            )
        blob = service.get_blob_client(container, name)
        with azure_errors(f"read blob {name}", location=f"{endpoint.netloc}/{container}"):
            if etag:
                downloader = blob.download_blob(
                    etag=f'"{etag.strip(chr(34))}"', match_condition=MatchConditions.IfNotModified
                )
            else:
                downloader = blob.download_blob()
            data = downloader.readall()
            content_type = (downloader.properties.content_settings.content_type or "").lower()
    kind = fmt or _blob_format(name, content_type)
    try:
        if kind == "parquet":
            return pl.read_parquet(io.BytesIO(data))
        return pl.read_csv(io.BytesIO(data), **csv_options)
    except pl.exceptions.PolarsError as exc:
        raise InvalidArtifactError(f"blob {name} is not readable as {kind}: {exc}", field="blob_uri") from exc


def _blob_format(name: str, content_type: str) -> Literal["csv", "parquet"]:
    lowered = name.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if "parquet" in content_type:
        return "parquet"
    if "csv" in content_type:
        return "csv"
    raise InvalidArtifactError(
        f"cannot tell the format of blob {name}: pass fmt='csv' or 'parquet'", field="fmt"
    )


# -- manual runs --------------------------------------------------------------------------------


class JobDefinitionRunConfig(Config):
    """Run config of a ``MANUAL`` run: which stored job definition to run, for which tenant.

    Give it as an op/asset ``config`` parameter; ``dq_run_request(context, config)`` turns it into
    the run's ``DQRunRequest`` and ``resolve(stores)`` finds the definition and its contract.
    """

    tenant: str = Field(description="The tenant whose job definition runs.")
    environment: str = Field(description="The environment (e.g. dev, prod) of the job definition.")
    job_definition_id: str = Field(description="The stored job definition to run.")
    version: str | None = Field(
        default=None, description="A version of the job definition; default: the latest non-retired one."
    )
    blob_uri: str | None = Field(
        default=None, description="A blob (http(s) URI) to read as the raw input instead of the usual source."
    )

    def resolve(self, stores: Stores) -> ResolvedJobDefinition:
        """The definition and its contract; ``NotFoundError`` (with the reason) when they do not resolve."""
        return resolve_job_definition(
            stores, self.tenant, self.environment, self.job_definition_id, self.version
        )

    def to_request(self, stores: Stores | None = None) -> DQRunRequest:
        """The run's ``DQRunRequest``; with ``stores``, completed from the stored definition
        (version, job types, contract), which must resolve.
        """
        if stores is not None:
            return self.resolve(stores).request(TriggerType.MANUAL.value, blob_uri=self.blob_uri)
        return DQRunRequest(
            tenant=self.tenant,
            environment=self.environment,
            job_definition_id=self.job_definition_id,
            job_definition_version=self.version,
            blob_uri=self.blob_uri,
        )


def manual_run_config(
    node_name: str, tenant: str, environment: str, job_definition_id: str, version: str | None = None
) -> dict[str, Any]:
    """The run config that hands ``JobDefinitionRunConfig`` to the op/asset ``node_name``."""
    config: dict[str, Any] = {
        "tenant": tenant,
        "environment": environment,
        "job_definition_id": job_definition_id,
    }
    if version is not None:
        config["version"] = version
    return {"ops": {node_name: {"config": config}}}


def dq_run_request(context: Any, config: JobDefinitionRunConfig | None = None) -> DQRunRequest | None:
    """What the current run is for: ``config`` when given (a manual run), else the run's tags (set
    by the sensors of this module); ``None`` when neither names a job definition.
    """
    if config is not None:
        return config.to_request()
    run = getattr(context, "run", None) or getattr(context, "dagster_run", None)
    tags: Mapping[str, str] = getattr(run, "tags", None) or {}
    return DQRunRequest.from_tags(tags)


# -- the Dagster sensors ------------------------------------------------------------------------


def tenant_partition_key(request: DQRunRequest) -> str | None:
    """The default partition of a requested run: the tenant (a job partitioned by tenant)."""
    return request.tenant


def _check_tenants(tenants: Sequence[str], environment: str) -> tuple[str, ...]:
    if isinstance(tenants, str):
        raise InvalidArtifactError("tenants must be a list of tenant ids, not one string", field="tenants")
    checked = tuple(dict.fromkeys(validate_id(t, "tenant") for t in tenants))
    validate_id(environment, "environment")
    if not checked:
        raise InvalidArtifactError("tenants must name at least one tenant", field="tenants")
    return checked


def _run_requests(
    evaluation: Evaluation,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None,
) -> list[RunRequest]:
    requests = []
    for planned in evaluation.runs:
        r = planned.request
        requests.append(
            RunRequest(
                run_key=planned.run_key,
                run_config=dict(run_config_fn(r)) if run_config_fn else None,
                tags=r.tags(),
                partition_key=partition_key_fn(r) if partition_key_fn else None,
                asset_selection=_selection(asset_selection_fn, r),
            )
        )
    return requests


def _selection(
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None, request: DQRunRequest
) -> list[AssetKey] | None:
    if asset_selection_fn is None:
        return None
    keys = asset_selection_fn(request)
    return list(keys) if keys else None


def _report(
    context: SensorEvaluationContext, evaluation: Evaluation, requests: list[RunRequest]
) -> SensorResult:
    for note in evaluation.notes:
        context.log.info(note)
    for warning in evaluation.warnings:
        context.log.warning(warning)
    if requests:
        return SensorResult(run_requests=requests, cursor=evaluation.cursor)
    reason = "; ".join(evaluation.warnings[:5]) if evaluation.warnings else "nothing came due"
    return SensorResult(skip_reason=reason, cursor=evaluation.cursor)


def build_job_definition_sensor(
    job: Any,
    *,
    tenants: Sequence[str],
    environment: str,
    stores_resource_key: str = "dq_stores",
    name: str = "dq_scheduled_job_definitions",
    minimum_interval_seconds: int = 30,
    max_catchup: int = 5,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None = tenant_partition_key,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None = None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> SensorDefinition:
    """The one sensor that runs ``job`` for every active ``SCHEDULED`` job definition of
    ``tenants`` in ``environment`` (see ``evaluate_schedules``).

    ``stores_resource_key`` names the ``DQStoresResource`` of the code location. Each run gets the
    tags of its ``DQRunRequest`` (``dq/tenant``, ``dq/environment``, ``dq/job_definition_id``,
    ``dq/job_types``, ``dq/scheduled_time``, contract), the partition ``partition_key_fn`` gives
    (default: the tenant; ``None`` for an unpartitioned job), and optionally run config /
    an asset selection (e.g. profiling assets only for a profiling job). ``clock`` is for tests.
    """
    tenant_ids = _check_tenants(tenants, environment)

    @sensor(
        job=job,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={stores_resource_key},
        description=(
            f"Runs {getattr(job, 'name', 'the DQ job')} at the cron times of the active SCHEDULED job "
            f"definitions of {', '.join(tenant_ids)} ({environment}), read from the store at every tick."
        ),
    )
    def _schedule_sensor(context: SensorEvaluationContext) -> SensorResult:
        stores: Stores = getattr(context.resources, stores_resource_key).get_stores()
        evaluation = evaluate_schedules(
            stores, tenant_ids, environment, context.cursor, clock(), max_catchup=max_catchup
        )
        return _report(
            context,
            evaluation,
            _run_requests(evaluation, partition_key_fn, run_config_fn, asset_selection_fn),
        )

    return _schedule_sensor


def build_blob_event_sensor(
    job: Any,
    *,
    tenants: Sequence[str] | Mapping[str, BlobSource],
    environment: str,
    source: BlobSource | None = None,
    stores_resource_key: str = "dq_stores",
    name: str = "dq_blob_event_job_definitions",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    lookback: timedelta = _DEFAULT_LOOKBACK,
    max_runs_per_definition: int = 100,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None = tenant_partition_key,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None = None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None = None,
) -> SensorDefinition:
    """The one sensor that runs ``job`` once per new blob for every active ``EXTERNAL_EVENT`` job
    definition with an Azure Blob ``event_source`` (see ``evaluate_blob_events``).

    ``tenants``: tenant ids (all read through ``source``, default ``BlobSource()``), or a mapping
    tenant -> ``BlobSource`` so each tenant reaches only its own account / containers. Each run
    carries ``dq/blob_uri`` (+ etag, container, name) in its tags; the run reads it with
    ``read_raw_blob`` (or ``BlobSource.read``).

    The sensor polls: every tick lists the blobs under the pattern's literal prefix, so keep that
    prefix specific (e.g. ``prod/inbound/2024-05-*``) or move processed blobs elsewhere.
    """
    if isinstance(tenants, Mapping):
        sources = {validate_id(t, "tenant"): s for t, s in tenants.items()}
        tenant_ids = _check_tenants(list(sources), environment)
    else:
        tenant_ids = _check_tenants(tenants, environment)
        sources = dict.fromkeys(tenant_ids, source or BlobSource())

    @sensor(
        job=job,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={stores_resource_key},
        description=(
            f"Runs {getattr(job, 'name', 'the DQ job')} once per new blob for the active Azure Blob "
            f"EXTERNAL_EVENT job definitions of {', '.join(tenant_ids)} ({environment})."
        ),
    )
    def _blob_sensor(context: SensorEvaluationContext) -> SensorResult:
        stores: Stores = getattr(context.resources, stores_resource_key).get_stores()
        connections: dict[tuple[str, str], BlobConnection] = {}

        def list_blobs(tenant: str, container: str, prefix: str) -> Iterable[BlobItem]:
            key = (tenant, container)
            if key not in connections:
                connections[key] = sources[tenant].connect(container)
            return list(_list_with(connections[key], container, prefix))

        try:
            evaluation = evaluate_blob_events(
                stores,
                tenant_ids,
                environment,
                context.cursor,
                list_blobs,
                allows=lambda tenant, container: sources[tenant].allows(container),
                lookback=lookback,
                max_runs_per_definition=max_runs_per_definition,
            )
        finally:
            for connection in connections.values():
                connection.close()
        return _report(
            context,
            evaluation,
            _run_requests(evaluation, partition_key_fn, run_config_fn, asset_selection_fn),
        )

    return _blob_sensor
