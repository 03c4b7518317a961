"""Stored action profiles run after every DQ run: notifications, webhooks, result exports,
OpenLineage events and tickets, each outcome recorded on the run's job runs.

What lives here:

* ``run_actions(stores, tenant, environment, job_run_id, job_definition, report)``: the plain
  executor (no Dagster). It classifies the DQ run (``failure``: the Dagster run failed, or a job
  run / validation report failed; ``anomaly``: it succeeded but a soft rule or a profiling
  expectation was breached; else ``success``), resolves the job definition's ``on_failure``, or
  ``on_success`` (+ ``on_anomaly`` for an anomaly) action profiles, executes their actions
  concurrently within a time budget, and records each outcome (succeeded / failed / skipped,
  attempts, error) in ``JobRun.actions`` of every job run of the DQ run, with
  read-modify-write on the etag. Only ``actions`` changes: status, summary and result are never
  touched, and no action failure is raised to the caller.
* Action types: ``CALL_WEBHOOK`` / ``SEND_NOTIFICATION`` / ``OPEN_TICKET`` POST JSON over HTTP(S)
  (timeout per attempt, bounded retries with exponential backoff on connection errors, timeouts,
  408/425/429/5xx; redirects are not followed); ``EMIT_LINEAGE`` POSTs an OpenLineage ``RunEvent``;
  ``STORE_RESULTS`` writes the reports and the payload to a ``file://`` or ``azure-blob://``
  location, under ``<tenant>/<environment>/<job definition>/<run>/``.
* ``build_action_sensors``: the Dagster glue, two run status sensors (run succeeded / run failed).

Why run status sensors and not an op at the end of the job: an op or asset at the end of the DQ
job does not run when a step before it fails or a blocking asset check stops the run, which is
exactly when ``on_failure`` matters; it would also have to sit in every job and every asset
selection (a profiling-only run selects other assets). A run status sensor sees every run of the
monitored jobs, failed ones included, needs nothing in the job graph, and keeps action latency and
failures out of the DQ run itself, so an action can never fail or slow a DQ result. The cost:
actions run in the sensor daemon within its evaluation limit (60 s by default, up to 5 runs per
tick), hence the per-run ``budget_seconds`` (default 10 s) that bounds every action and retry; and
the daemon must be running. Re-processing a run (a tick that crashed half-way) does not repeat an
action that already succeeded: the recorded outcomes are checked first.

Secrets: parameters never hold a secret, only the names of environment variables
(``url_env``, ``token_env``, ``headers_env``, ``api_key_env``, ``connection_string_env``), and
only names matching ``ActionSettings.allowed_env`` may be read, so a stored profile cannot send an
arbitrary variable of the code location anywhere. A secret header requires the URL to come from an
environment variable too. Secret values are scrubbed from every error recorded or logged, and URLs
are never logged (only their host).
"""

# No ``from __future__ import annotations``: Dagster inspects the sensor function's annotations.

import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    RunStatusSensorDefinition,
)

from dq_dagster.schedules import DQRunRequest, JobDefinitionRunConfig
from dq_dagster.writer import derive_job_id
from dq_stores.canonical import canonical_json, format_timestamp
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
    StoreError,
)
from dq_stores.models import (
    ActionConfig,
    ActionOutcome,
    ActionOutcomeStatus,
    ActionProfile,
    ActionProfileRef,
    ActionType,
    CleansingReport,
    JobDefinition,
    JobRun,
    JobRunStatus,
    JobType,
    OrchestratorInfo,
    ProfilingSnapshot,
    ReportStatus,
    RunContractRef,
    Severity,
    ValidationReport,
)
from dq_stores.models.common import utcnow
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores

__all__ = [
    "OPENLINEAGE_SCHEMA_URL",
    "PAYLOAD_SCHEMA",
    "TICKET_SCHEMA",
    "ActionEvent",
    "ActionSettings",
    "DQRunFacts",
    "build_action_payload",
    "build_action_sensors",
    "build_openlineage_event",
    "classify",
    "record_outcomes",
    "run_actions",
]

Report = ValidationReport | CleansingReport | ProfilingSnapshot

PAYLOAD_SCHEMA = "dq.action.v1"
TICKET_SCHEMA = "dq.ticket.v1"
OPENLINEAGE_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACET_URLS = {
    "errorMessage": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "dataQualityAssertions": "https://openlineage.io/spec/facets/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
    "dataQualityMetrics": "https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
    "outputStatistics": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
}
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
    job_runs: Sequence[JobRun], reports: Sequence[Report], *, run_failed: bool = False
) -> tuple[ActionEvent, list[str]]:
    """The event of a DQ run and the reasons for it (one line each)."""
    failures: list[str] = []
    anomalies: list[str] = []
    if run_failed:
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


def _slots(definition: JobDefinition, event: ActionEvent) -> list[tuple[str, ActionProfileRef]]:
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


# -- payloads -----------------------------------------------------------------------------------


def _summary_text(facts: DQRunFacts) -> str:
    d = facts.job_definition
    return f"[DQ {facts.event.value.upper()}] {d.name} ({facts.tenant}/{facts.environment}): " + "; ".join(
        facts.reasons[:5]
    )


def build_action_payload(
    facts: DQRunFacts,
    *,
    action_type: str,
    profile_id: str | None,
    profile_version: str | None,
    slot: str | None,
    settings: ActionSettings | None = None,
) -> dict[str, Any]:
    """The ``dq.action.v1`` JSON document every HTTP action sends (see README "Webhook payload").

    It never holds failing-value samples (they may be personal data) or secrets.
    """
    settings = settings or ActionSettings()
    d = facts.job_definition
    failed_rules: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    contract_version: str | None = d.data_contract.version
    for report in facts.reports:
        contract_version = report.contract_version or contract_version
        if isinstance(report, ValidationReport):
            for rule in sorted(report.failed_rules, key=lambda r: (-r.failed_count, r.rule_id)):
                failed_rules.append(
                    {
                        "rule_id": rule.rule_id,
                        "rule_type": rule.rule_type,
                        "column": rule.column,
                        "severity": Severity(rule.severity).value,
                        "failed_count": rule.failed_count,
                        "checked_count": rule.checked_count,
                        "failure_rate": rule.failure_rate,
                    }
                )
        elif isinstance(report, ProfilingSnapshot):
            for exp in report.anomalies:
                anomalies.append(
                    {
                        "column": exp.column,
                        "metric": exp.metric,
                        "observed": exp.observed,
                        "min_threshold": exp.min_threshold,
                        "max_threshold": exp.max_threshold,
                        "severity": Severity(exp.severity).value,
                    }
                )
    dagster: dict[str, Any] | None = None
    if facts.dagster_run_id:
        dagster = {"run_id": facts.dagster_run_id, "job_name": facts.dagster_job_name}
        if settings.dagster_url:
            dagster["url"] = f"{settings.dagster_url.rstrip('/')}/runs/{facts.dagster_run_id}"
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": facts.event.value,
        "reasons": list(facts.reasons),
        "text": _summary_text(facts),
        "occurred_at": format_timestamp(facts.occurred_at),
        "tenant": facts.tenant,
        "environment": facts.environment,
        "action": {
            "type": action_type,
            "profile_id": profile_id,
            "profile_version": profile_version,
            "slot": slot,
        },
        "job_definition": {"id": d.job_definition_id, "version": d.version, "name": d.name},
        "contract": {
            "id": d.data_contract.contract_id,
            "version": contract_version,
            "dataset_contract_id": d.data_contract.dataset_contract_id,
            "dataset_type": facts.dataset_type,
        },
        "dagster": dagster,
        "input": {"uri": redact(facts.input_uri)} if facts.input_uri else None,
        "run_error": redact(facts.run_error) if facts.run_error else None,
        "job_runs": [_job_run_entry(run) for run in facts.job_runs],
        "failed_rules": failed_rules[:MAX_LISTED],
        "failed_rules_total": len(failed_rules),
        "anomalies": anomalies[:MAX_LISTED],
        "anomalies_total": len(anomalies),
    }


def _job_run_entry(run: JobRun) -> dict[str, Any]:
    summary = run.summary
    result = run.result
    return {
        "job_run_id": run.job_id,
        "job_type": JobType(run.job_type).value,
        "status": JobRunStatus(run.status).value,
        "message": run.message,
        "row_count": summary.row_count if summary else None,
        "pass_rate": summary.pass_rate if summary else None,
        "rules_total": summary.rules_total if summary else None,
        "rules_failed": summary.rules_failed if summary else None,
        "result": {
            "location": result.location,
            "uri": redact(result.uri) if result.uri else None,
            "sha256": result.sha256,
            "size_bytes": result.size_bytes,
            "result_type": result.result_type,
        }
        if result
        else None,
    }


def _lineage_run_id(facts: DQRunFacts) -> str:
    # OpenLineage wants a UUID; Dagster run ids are UUIDs, anything else maps to a stable UUIDv5.
    try:
        return str(uuid.UUID(facts.run_ref))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dq://{facts.tenant}/{facts.environment}/{facts.run_ref}"))


def _facet(name: str, settings: ActionSettings, **values: Any) -> dict[str, Any]:
    return {"_producer": settings.producer, "_schemaURL": _FACET_URLS[name], **values}


def build_openlineage_event(
    facts: DQRunFacts, parameters: Mapping[str, Any] | None = None, settings: ActionSettings | None = None
) -> dict[str, Any]:
    """An OpenLineage ``RunEvent`` (``COMPLETE`` or ``FAIL``) for the DQ run.

    Job: ``namespace`` (parameter, default ``dq/<tenant>/<environment>``) and the job definition
    id. Input: the raw data (the blob URI when there is one, else the dataset type) with
    ``dataQualityAssertions`` (one per validation rule) and ``dataQualityMetrics`` (row count and
    per-column null/distinct counts, min/max) facets unless ``include_payload`` is false. Output:
    the cleansed dataset, when the run cleansed, with ``outputStatistics``.
    """
    params = dict(parameters or {})
    settings = settings or ActionSettings()
    namespace = str(params.get("namespace") or f"dq/{facts.tenant}/{facts.environment}")
    dataset_namespace = str(params.get("dataset_namespace") or namespace)
    include = params.get("include_payload", True) is not False
    dataset_name = facts.dataset_type or facts.job_definition.data_contract.contract_id
    input_name = redact(facts.input_uri) if facts.input_uri else dataset_name
    input_dataset: dict[str, Any] = {"namespace": dataset_namespace, "name": input_name}
    outputs: list[dict[str, Any]] = []
    if include:
        assertions = [
            {
                "assertion": rule.rule_id,
                "success": rule.passed,
                **({"column": rule.column} if rule.column else {}),
            }
            for report in facts.reports
            if isinstance(report, ValidationReport)
            for rule in report.rules
        ]
        if assertions:
            input_dataset["facets"] = {
                "dataQualityAssertions": _facet("dataQualityAssertions", settings, assertions=assertions)
            }
        for report in facts.reports:
            if isinstance(report, ProfilingSnapshot):
                column_metrics: dict[str, Any] = {}
                for col in report.columns:
                    metrics: dict[str, Any] = {
                        "nullCount": col.null_count,
                        "distinctCount": col.distinct_count,
                    }
                    for key, value in (("min", col.min), ("max", col.max)):
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            metrics[key] = value
                    column_metrics[col.column] = metrics
                input_dataset["inputFacets"] = {
                    "dataQualityMetrics": _facet(
                        "dataQualityMetrics",
                        settings,
                        rowCount=report.row_count,
                        columnMetrics=column_metrics,
                    )
                }
                break
        for report in facts.reports:
            if isinstance(report, CleansingReport):
                outputs.append(
                    {
                        "namespace": dataset_namespace,
                        "name": f"{dataset_name}.cleansed",
                        "outputFacets": {
                            "outputStatistics": _facet("outputStatistics", settings, rowCount=report.rows_out)
                        },
                    }
                )
                break
    run: dict[str, Any] = {"runId": _lineage_run_id(facts)}
    if facts.event is ActionEvent.FAILURE:
        run["facets"] = {
            "errorMessage": _facet(
                "errorMessage",
                settings,
                message="; ".join(facts.reasons)[:_MAX_ERROR],
                programmingLanguage="python",
            )
        }
    return {
        "eventType": "FAIL" if facts.event is ActionEvent.FAILURE else "COMPLETE",
        "eventTime": format_timestamp(facts.occurred_at),
        "producer": settings.producer,
        "schemaURL": OPENLINEAGE_SCHEMA_URL,
        "run": run,
        "job": {"namespace": namespace, "name": facts.job_definition.job_definition_id},
        "inputs": [input_dataset],
        "outputs": outputs,
    }


# -- executing one action -----------------------------------------------------------------------


class _ActionConfigError(Exception):
    """The action's parameters or the environment are wrong: failed without any attempt."""


class _NothingToDo(Exception):
    """The action has no target configured (e.g. no notification endpoint): skipped."""


@dataclass
class _Secrets:
    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> str:
        if len(value) >= 4:
            self.values.append(value)
        return value

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return redact(text)[:_MAX_ERROR]


@dataclass
class _Exec:
    facts: DQRunFacts
    settings: ActionSettings
    environ: Mapping[str, str]
    deadline: float
    secrets: _Secrets
    profile: ActionProfile
    slot: str
    action_type: str
    ordinal: int

    def env_allowed(self, name: str) -> bool:
        tenant = self.facts.tenant
        upper = re.sub(r"[^A-Z0-9]", "_", tenant.upper())
        patterns = [
            p.replace("{tenant}", tenant).replace("{TENANT}", upper) for p in self.settings.allowed_env
        ]
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    def env(self, param: str, name: Any, *, required: bool = True) -> str | None:
        """The value of the environment variable ``name`` (given by parameter ``param``)."""
        if not isinstance(name, str) or not name:
            raise _ActionConfigError(f"parameter {param} must name an environment variable")
        if not self.env_allowed(name):
            raise _ActionConfigError(
                f"parameter {param} names {name}, which action profiles may not read "
                f"(allowed: {', '.join(self.settings.allowed_env)})"
            )
        value = self.environ.get(name)
        if not value:
            if required:
                raise _ActionConfigError(f"environment variable {name} (parameter {param}) is not set")
            return None
        return self.secrets.add(value)

    @property
    def idempotency_key(self) -> str:
        # Stable across retries and re-processing of the same DQ run: receivers can dedup on it.
        facts = self.facts
        raw = "/".join(
            (facts.tenant, facts.environment, facts.run_ref, self.profile.action_profile_id, self.action_type)
        )
        raw += f"/{self.ordinal}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def payload(self, action_type: ActionType) -> dict[str, Any]:
        return build_action_payload(
            self.facts,
            action_type=action_type.value,
            profile_id=self.profile.action_profile_id,
            profile_version=self.profile.version,
            slot=self.slot,
            settings=self.settings,
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could carry a secret header to another host: refuse it (HTTPError 3xx).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _http_target(x: _Exec, action_type: ActionType, params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The URL and headers of an HTTP action, from its parameters and the environment."""
    url_env = params.get("url_env")
    literal = params.get("url")
    if url_env is not None and literal is not None:
        raise _ActionConfigError("give url_env or url, not both")
    url: str | None
    if url_env is not None:
        url = x.env("url_env", url_env)
    elif literal is not None:
        if not isinstance(literal, str):
            raise _ActionConfigError("parameter url must be a string")
        url = literal
    else:
        default = _DEFAULT_URL_ENV.get(action_type)
        # A default name this code location does not allow simply means "no endpoint".
        url = x.env("url_env", default, required=False) if default and x.env_allowed(default) else None
        if url is None:
            if default is None:
                raise _ActionConfigError(f"{action_type.value} needs url_env (or url)")
            raise _NothingToDo(f"no endpoint: set {default} or give url_env in the action parameters")
        url_env = default
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _ActionConfigError(f"the {'url' if literal else 'url_env'} endpoint must be an http(s) URL")
    endpoint = params.get("endpoint")
    if action_type is ActionType.EMIT_LINEAGE:
        # The OpenLineage HTTP transport convention: base URL + endpoint "api/v1/lineage".
        endpoint = "api/v1/lineage" if endpoint is None else endpoint
    if endpoint:
        if not isinstance(endpoint, str) or "://" in endpoint:
            raise _ActionConfigError("parameter endpoint must be a relative path")
        url = url.rstrip("/") + "/" + endpoint.lstrip("/")
    headers: dict[str, str] = {}
    literal_headers = params.get("headers") or {}
    if not isinstance(literal_headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in literal_headers.items()
    ):
        raise _ActionConfigError("parameter headers must be an object of strings")
    for name in literal_headers:
        if name.lower() in _SECRET_HEADERS:
            raise _ActionConfigError(f"header {name} is a secret: give it through token_env or headers_env")
    headers.update(literal_headers)
    secret_headers = False
    if params.get("headers_env") is not None:
        raw = x.env("headers_env", params["headers_env"])
        try:
            extra = json.loads(raw or "")
        except ValueError:
            extra = None
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise _ActionConfigError(
                f"environment variable {params['headers_env']} must hold a JSON object of strings"
            )
        for value in extra.values():
            x.secrets.add(value)
        headers.update(extra)
        secret_headers = True
    token_param = "api_key_env" if action_type is ActionType.EMIT_LINEAGE else "token_env"
    token_env = params.get(token_param)
    token: str | None = None
    if token_env is not None:
        token = x.env(token_param, token_env)
    elif action_type is ActionType.EMIT_LINEAGE:
        token = (
            x.env(token_param, "OPENLINEAGE_API_KEY", required=False)
            if x.env_allowed("OPENLINEAGE_API_KEY")
            else None
        )
    if token:
        headers["Authorization"] = f"Bearer {token}"
        secret_headers = True
    if secret_headers and url_env is None:
        raise _ActionConfigError(
            "a secret header needs the URL from url_env too: a literal url in a stored profile could send it anywhere"
        )
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = "dq-dagster-actions/1"
    headers["Idempotency-Key"] = x.idempotency_key
    return url, headers


def _post_json(
    x: _Exec, url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
) -> tuple[int, str | None]:
    """POST ``body``; returns (attempts, error or None). Retries within the settings and deadline."""
    data = json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    settings = x.settings
    host = _host(url)
    # Built per action, not at import: proxy variables (HTTPS_PROXY, NO_PROXY) are read now.
    opener = urllib.request.build_opener(_NoRedirect())
    attempts = 0
    error: str | None = None
    for attempt in range(1, settings.max_attempts + 1):
        remaining = x.deadline - time.monotonic()
        if remaining <= 0.05:
            error = (error + "; " if error else "") + "time budget exhausted"
            break
        attempts = attempt
        retry_after: float | None = None
        request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
        try:
            with opener.open(request, timeout=min(timeout, remaining)) as response:
                response.read(65536)
            return attempts, None
        except urllib.error.HTTPError as exc:
            status = exc.code
            header = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
            if 300 <= status < 400:
                return attempts, f"HTTP {status} from {host} (redirects are not followed)"
            error = f"HTTP {status} from {host}"
            if status not in _RETRYABLE_STATUS:
                return attempts, error
            if header and header.strip().isdigit():
                retry_after = float(header.strip())
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            kind = (
                "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else str(reason)
            )
            error = f"{host}: {kind}"
        if attempt == settings.max_attempts:
            break
        delay = min(settings.max_backoff_seconds, settings.backoff_seconds * 2 ** (attempt - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.max_backoff_seconds))
        if time.monotonic() + delay >= x.deadline:
            error = f"{error}; no time left for another attempt"
            break
        time.sleep(delay)
    return attempts, error


def _do_http(x: _Exec, action_type: ActionType, action: ActionConfig) -> tuple[int, str | None]:
    params = action.parameters
    url, headers = _http_target(x, action_type, params)
    if str(params.get("method", "POST")).upper() != "POST":
        raise _ActionConfigError("parameter method must be POST (the only method HTTP actions use)")
    timeout = x.settings.timeout_seconds
    if params.get("timeout_seconds") is not None:
        value = params["timeout_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
            raise _ActionConfigError("parameter timeout_seconds must be a number of seconds from 0 to 300")
        timeout = float(value)  # per attempt; the run's time budget still bounds it
    payload = x.payload(action_type)
    body: dict[str, Any]
    if action_type is ActionType.SEND_NOTIFICATION:
        fmt = params.get("format", "dq")
        extra = {k: params[k] for k in ("channel", "template_id") if isinstance(params.get(k), str)}
        if fmt == "text":
            # Slack and Teams incoming webhooks take {"text": ...}.
            body = {"text": payload["text"], **({"channel": extra["channel"]} if "channel" in extra else {})}
        elif fmt == "dq":
            body = {**payload, **extra}
        else:
            raise _ActionConfigError("parameter format must be 'dq' or 'text'")
    elif action_type is ActionType.OPEN_TICKET:
        body = _ticket(x, params, payload)
    elif action_type is ActionType.EMIT_LINEAGE:
        body = build_openlineage_event(x.facts, params, x.settings)
    else:
        body = payload
    return _post_json(x, url, headers, body, timeout)


def _ticket(x: _Exec, params: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    facts = x.facts
    default_priority = {
        ActionEvent.FAILURE: "high",
        ActionEvent.ANOMALY: "medium",
        ActionEvent.SUCCESS: "low",
    }
    labels = params.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise _ActionConfigError("parameter labels must be a list of strings")
    lines = [payload["text"], "", *[f"- {reason}" for reason in facts.reasons]]
    if payload["failed_rules"]:
        lines += ["", "Failed rules:"] + [
            f"- {r['rule_id']} ({r['severity']}): {r['failed_count']} of {r['checked_count']} rows"
            for r in payload["failed_rules"][:20]
        ]
    if payload["dagster"] and payload["dagster"].get("url"):
        lines += ["", f"Dagster run: {payload['dagster']['url']}"]
    return {
        "schema": TICKET_SCHEMA,
        "title": str(
            params.get("title")
            or f"DQ {facts.event.value}: {facts.job_definition.name} ({facts.tenant}/{facts.environment})"
        )[:250],
        "description": "\n".join(lines),
        "priority": str(params.get("priority") or default_priority[facts.event]),
        "project": params.get("project"),
        "assignee": params.get("assignee"),
        "labels": ["data-quality", facts.event.value, *labels],
        "dedup_key": f"dq:{facts.tenant}:{facts.environment}:{facts.job_definition.job_definition_id}:{facts.run_ref}",
        "dq": payload,
    }


def _location_allowed(x: _Exec, location: str) -> bool:
    allowed = x.settings.allowed_locations
    if allowed is None:
        return True
    tenant = x.facts.tenant
    upper = re.sub(r"[^A-Z0-9]", "_", tenant.upper())
    prefixes = [p.replace("{tenant}", tenant).replace("{TENANT}", upper) for p in allowed]
    return any(
        location.rstrip("/") + "/" == p.rstrip("/") + "/" or location.startswith(p.rstrip("/") + "/")
        for p in prefixes
    )


def _do_store(x: _Exec, action: ActionConfig) -> tuple[int, str | None]:
    from dq_stores.stores import open_payload_store

    params = action.parameters
    location = params.get("location", x.settings.store_location)
    if location is None:
        raise _NothingToDo(
            "the results are kept in the DQ store already; give parameters.location (file://... or "
            "azure-blob://...) or ActionSettings.store_location to export a copy"
        )
    if not isinstance(location, str) or not location:
        raise _ActionConfigError("parameter location must be a file:// or azure-blob:// URL")
    scheme = urlsplit(location).scheme
    if scheme not in {"file", "azure-blob"}:
        raise _ActionConfigError("parameter location must be a file:// or azure-blob:// URL")
    if "?" in location:
        raise _ActionConfigError(
            "parameter location must not carry a query (credentials come from connection_string_env)"
        )
    if not _location_allowed(x, location):
        raise _ActionConfigError(
            f"location {redact(location)} is not one this code location allows for tenant {x.facts.tenant}"
        )
    options: dict[str, Any] = {}
    if params.get("connection_string_env") is not None:
        if scheme != "azure-blob":
            raise _ActionConfigError("connection_string_env only applies to azure-blob:// locations")
        options["connection_string"] = x.env("connection_string_env", params["connection_string_env"])
    if scheme == "azure-blob":
        options.update({"retry_total": 1, "connection_timeout": int(x.settings.timeout_seconds) or 1})
    facts = x.facts
    folder = f"{facts.tenant}/{facts.environment}/{facts.job_definition.job_definition_id}/{facts.run_ref}"
    documents: list[tuple[str, bytes]] = [
        (f"{folder}/summary.json", canonical_json(x.payload(ActionType.STORE_RESULTS)))
    ]
    for report, run in _pair_reports(facts):
        name = f"{JobType(report.report_type).value}-{run.job_id if run else len(documents)}"
        documents.append((f"{folder}/{name}.json", canonical_json(report)))
    attempts = 0
    error: str | None = None
    for attempt in range(1, x.settings.max_attempts + 1):
        if x.deadline - time.monotonic() <= 0.05:
            error = (error + "; " if error else "") + "time budget exhausted"
            break
        attempts = attempt
        try:
            store = open_payload_store(location, **options)
            try:
                for key, data in documents:
                    store.write(key, data, content_type="application/json")
            finally:
                store.close()
            return attempts, None
        except BackendUnavailableError as exc:
            error = f"cannot write to the location: {exc}"
        except StoreError as exc:
            return attempts, f"cannot write to the location: {exc}"
        if attempt < x.settings.max_attempts:
            delay = min(x.settings.max_backoff_seconds, x.settings.backoff_seconds * 2 ** (attempt - 1))
            if time.monotonic() + delay >= x.deadline:
                break
            time.sleep(delay)
    return attempts, error


def _pair_reports(facts: DQRunFacts) -> list[tuple[Report, JobRun | None]]:
    pairs: list[tuple[Report, JobRun | None]] = []
    used: set[str] = set()
    for report in facts.reports:
        match = next(
            (
                run
                for run in facts.job_runs
                if run.job_id not in used
                and JobType(run.job_type).value == report.report_type
                and run.result is not None
                and run.result.result_type == report.report_type
            ),
            None,
        )
        if match is not None:
            used.add(match.job_id)
        pairs.append((report, match))
    return pairs


def _execute(x: _Exec, action: ActionConfig) -> ActionOutcome:
    action_type = ActionType(action.action_type)
    started = utcnow()
    attempts = 0
    status = ActionOutcomeStatus.FAILED
    error: str | None = None
    try:
        if action_type is ActionType.STORE_RESULTS:
            attempts, error = _do_store(x, action)
        else:
            attempts, error = _do_http(x, action_type, action)
        status = ActionOutcomeStatus.SUCCEEDED if error is None else ActionOutcomeStatus.FAILED
    except _NothingToDo as exc:
        status, error = ActionOutcomeStatus.SKIPPED, str(exc)
    except _ActionConfigError as exc:
        status, error = ActionOutcomeStatus.FAILED, str(exc)
    except Exception as exc:  # an action must never break the DQ run or the other actions
        status, error = ActionOutcomeStatus.FAILED, f"unexpected {type(exc).__name__}: {exc}"
    return ActionOutcome(
        action_type=action_type.value,
        action_profile_id=x.profile.action_profile_id,
        status=status,
        attempts=attempts,
        error=x.secrets.scrub(error) if error else None,
        started_at=started,
        completed_at=utcnow(),
    )


# -- the executor -------------------------------------------------------------------------------


def _load_reports(stores: Stores, runs: Sequence[JobRun], log: Any) -> list[Report]:
    reports: list[Report] = []
    for run in runs:
        if run.result is None or run.result.result_type not in {"validation", "cleansing", "profiling"}:
            continue
        try:
            model = stores.job_runs.get_result_model(run.tenant_id, run.environment, run.job_id)
        except StoreError as exc:
            log.warning(f"job run {run.job_id}: cannot read its report for the actions ({redact(str(exc))})")
            continue
        if isinstance(model, ValidationReport | CleansingReport | ProfilingSnapshot):
            reports.append(model)
    return reports


def _same(outcome: ActionOutcome) -> ActionOutcome:
    return outcome


def _outcome_key(outcome: ActionOutcome, ordinal: int) -> tuple[str | None, str, int]:
    return (outcome.action_profile_id, outcome.action_type, ordinal)


def _keyed(outcomes: Sequence[ActionOutcome]) -> dict[tuple[str | None, str, int], ActionOutcome]:
    counts: dict[tuple[str | None, str], int] = {}
    keyed = {}
    for outcome in outcomes:
        base = (outcome.action_profile_id, outcome.action_type)
        counts[base] = counts.get(base, 0) + 1
        keyed[_outcome_key(outcome, counts[base])] = outcome
    return keyed


def run_actions(
    stores: Stores,
    tenant: str,
    environment: str,
    job_run_id: str | Sequence[str],
    job_definition: JobDefinition,
    report: Report | Sequence[Report] | None = None,
    *,
    run_failed: bool = False,
    run_error: str | None = None,
    dagster_run_id: str | None = None,
    dagster_job_name: str | None = None,
    input_uri: str | None = None,
    settings: ActionSettings | None = None,
    environ: Mapping[str, str] | None = None,
    log: Any = None,
    record: bool = True,
) -> list[ActionOutcome]:
    """Execute the action profiles of ``job_definition`` for one DQ run; return the outcomes.

    ``job_run_id``: the job run(s) of the DQ run (outcomes are recorded on each). ``report``: the
    run's report(s); ``None`` reads them from the job runs' stored results. ``run_failed``: the
    orchestrator's run failed (e.g. a step raised), which makes the event a failure whatever the
    reports say. Raises only for bad arguments (``InvalidArtifactError``, ``ScopeViolationError``);
    action, endpoint and store failures become outcomes and log lines.
    """
    settings = settings or ActionSettings()
    environ = os.environ if environ is None else environ
    log = log or logging.getLogger("dq_dagster.actions")
    scope = Scope(tenant, environment)
    if (job_definition.tenant_id, job_definition.environment) != (scope.tenant, scope.environment):
        raise ScopeViolationError(
            f"job definition {job_definition.job_definition_id} belongs to "
            f"{job_definition.tenant_id}/{job_definition.environment}, not to {scope}"
        )
    ids = [job_run_id] if isinstance(job_run_id, str) else list(job_run_id)
    ids = list(dict.fromkeys(validate_id(i, "job_run_id") for i in ids))
    runs: list[JobRun] = []
    for job_id in ids:
        try:
            found = stores.job_runs.get(tenant, environment, job_id)
        except StoreError as exc:
            log.warning(f"job run {job_id}: cannot read it ({redact(str(exc))})")
            continue
        if found is None:
            log.warning(f"job run {job_id} does not exist in {scope}; its actions are not recorded there")
        else:
            runs.append(found)
    if report is None:
        reports = _load_reports(stores, runs, log)
    elif isinstance(report, ValidationReport | CleansingReport | ProfilingSnapshot):
        reports = [report]
    else:
        reports = list(report)
    event, reasons = classify(runs, reports, run_failed=run_failed)
    facts = DQRunFacts(
        tenant=tenant,
        environment=environment,
        job_definition=job_definition,
        job_runs=tuple(runs),
        reports=tuple(reports),
        event=event,
        reasons=tuple(reasons),
        occurred_at=utcnow(),
        dagster_run_id=dagster_run_id,
        dagster_job_name=dagster_job_name,
        run_error=run_error,
        input_uri=input_uri,
    )
    slots = _slots(job_definition, event)
    if not slots:
        log.info(f"DQ run {facts.run_ref} ({event.value}): the job definition names no action profile for it")
        return []
    previous = _keyed(runs[0].actions) if runs else {}
    deadline = time.monotonic() + settings.budget_seconds
    tasks: list[Callable[[], ActionOutcome]] = []
    for slot, ref in slots:
        try:
            profile = stores.action_profiles.get(tenant, environment, ref.action_profile_id, ref.version)
            if profile is None and ref.version is None:
                # "Latest" skips retired versions: tell a retired profile from a missing one.
                versions = stores.action_profiles.versions(tenant, environment, ref.action_profile_id)
                if versions:
                    profile = stores.action_profiles.get(
                        tenant, environment, ref.action_profile_id, versions[0]
                    )
        except StoreError as exc:
            profile = None
            problem = f"cannot read action profile {ref.action_profile_id}: {redact(str(exc))}"
        else:
            problem = f"action profile {ref.action_profile_id}{'@' + ref.version if ref.version else ''} does not exist in {scope}"
        if profile is None or profile.is_retired:
            status = ActionOutcomeStatus.FAILED if profile is None else ActionOutcomeStatus.SKIPPED
            message = (
                problem
                if profile is None
                else f"action profile {ref.action_profile_id}@{profile.version} is retired"
            )
            outcome = ActionOutcome(
                action_type="ACTION_PROFILE",
                action_profile_id=ref.action_profile_id,
                status=status,
                error=message,
            )
            tasks.append(functools.partial(_same, outcome))
            continue
        counts: dict[str, int] = {}
        for action in profile.actions:
            type_value = ActionType(action.action_type).value
            counts[type_value] = counts.get(type_value, 0) + 1
            done = previous.get((profile.action_profile_id, type_value, counts[type_value]))
            if done is not None and ActionOutcomeStatus(done.status) is ActionOutcomeStatus.SUCCEEDED:
                # Re-processing the same DQ run: what already succeeded is not done again.
                tasks.append(functools.partial(_same, done))
                continue
            x = _Exec(
                facts, settings, environ, deadline, _Secrets(), profile, slot, type_value, counts[type_value]
            )
            tasks.append(functools.partial(_execute, x, action))
    workers = max(1, min(settings.max_workers, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dq-action") as pool:
        outcomes = list(pool.map(lambda task: task(), tasks))
    for outcome in outcomes:
        line = f"action {outcome.action_type} of profile {outcome.action_profile_id}: {ActionOutcomeStatus(outcome.status).value}"
        line += f" after {outcome.attempts} attempt(s)" if outcome.attempts else ""
        line += f" ({outcome.error})" if outcome.error else ""
        (log.info if ActionOutcomeStatus(outcome.status) is not ActionOutcomeStatus.FAILED else log.warning)(
            line
        )
    if record:
        record_outcomes(stores, tenant, environment, [r.job_id for r in runs], outcomes, log=log)
    return outcomes


def record_outcomes(
    stores: Stores,
    tenant: str,
    environment: str,
    job_run_ids: Sequence[str],
    outcomes: Sequence[ActionOutcome],
    *,
    log: Any = None,
) -> list[str]:
    """Put ``outcomes`` in ``JobRun.actions`` of each job run (replacing earlier outcomes of the
    same profiles, keeping others), by etag with retry; nothing else of the run changes. Returns
    the ids recorded; failures are logged, never raised.
    """
    log = log or logging.getLogger("dq_dagster.actions")
    profiles = {o.action_profile_id for o in outcomes}
    recorded: list[str] = []
    for job_id in job_run_ids:
        for _ in range(20):
            try:
                entry = stores.job_runs.get_entry(tenant, environment, job_id)
                if entry is None:
                    log.warning(f"job run {job_id} disappeared; action outcomes not recorded on it")
                    break
                kept = [o for o in entry.artifact.actions if o.action_profile_id not in profiles]
                merged = kept + list(outcomes)
                if merged != entry.artifact.actions:
                    stores.job_runs.put(
                        entry.artifact.model_copy(update={"actions": merged}), if_match=entry.etag
                    )
                recorded.append(job_id)
                break
            except ConflictError:
                continue  # another writer changed the run: re-read and re-apply
            except (StoreError, InvalidArtifactError) as exc:
                log.warning(f"job run {job_id}: action outcomes not recorded ({redact(str(exc))})")
                break
        else:
            log.warning(f"job run {job_id} kept changing; action outcomes not recorded on it")
    return recorded


# -- the Dagster glue ---------------------------------------------------------------------------


def _request_of(run: Any, environment: str) -> DQRunRequest | None:
    """What the Dagster run was for: its ``dq/*`` tags, else a ``JobDefinitionRunConfig`` in its
    run config, else just the tenant its partition names.
    """
    request = DQRunRequest.from_tags(run.tags)
    if request is not None:
        return request
    for node in ((run.run_config or {}).get("ops") or {}).values():
        config = node.get("config") if isinstance(node, Mapping) else None
        if isinstance(config, Mapping) and {"tenant", "environment", "job_definition_id"} <= set(config):
            try:
                return JobDefinitionRunConfig(**config).to_request()
            except ValueError:
                continue  # not our config after all; keep looking
    return None


def _all_job_runs(stores: Stores, tenant: str, environment: str, dagster_run_id: str) -> list[JobRun]:
    runs: list[JobRun] = []
    cursor: str | None = None
    while True:
        page = stores.job_runs.list(
            tenant, environment, dagster_run_id=dagster_run_id, limit=500, cursor=cursor
        )
        runs.extend(page.items)
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


def _placeholder_run(
    stores: Stores, definition: JobDefinition, dagster_run: Any, message: str | None
) -> JobRun:
    """The job run that records a DQ run which failed before writing any result."""
    job_id = derive_job_id(dagster_run.run_id, output_name="dq-run-failure")
    existing = stores.job_runs.get(definition.tenant_id, definition.environment, job_id)
    if existing is not None:
        return existing
    now = utcnow()
    job_types = definition.job_types or [JobType.VALIDATION]
    run = JobRun(
        job_id=job_id,
        tenant_id=definition.tenant_id,
        environment=definition.environment,
        job_type=job_types[0],
        status=JobRunStatus.FAILED,
        job_definition_id=definition.job_definition_id,
        contract=RunContractRef(
            contract_id=definition.data_contract.contract_id, version=definition.data_contract.version
        ),
        submitted_at=now,
        completed_at=now,
        orchestrator=OrchestratorInfo(
            run_id=dagster_run.run_id,
            job_name=dagster_run.job_name,
            partition_key=dagster_run.tags.get("dagster/partition"),
        ),
        message=redact(f"the Dagster run failed before recording a result: {message or 'no message'}")[
            :_MAX_ERROR
        ],
    )
    stores.job_runs.put(run)
    return run


def _handle_run(
    context: RunStatusSensorContext,
    *,
    failed: bool,
    environment: str,
    tenants: frozenset[str] | None,
    stores_resource_key: str,
    settings: ActionSettings,
) -> str | None:
    """Run the actions of one finished Dagster run; return why none ran, or ``None``."""
    run = context.dagster_run
    try:
        request = _request_of(run, environment)
    except InvalidArtifactError as exc:
        return f"its dq/* tags are invalid ({exc})"
    tenant = request.tenant if request else run.tags.get("dagster/partition")
    if tenant is None:
        return "it names no tenant (no dq/tenant tag, no tenant partition)"
    if request is not None and request.environment != environment:
        return f"it is for environment {request.environment}, not {environment}"
    if tenants is not None and tenant not in tenants:
        return f"tenant {tenant!r} is not one this sensor serves"
    try:
        validate_id(tenant, "tenant")
    except InvalidArtifactError:
        return f"partition {tenant[:40]!r} is not a tenant id"
    stores: Stores = getattr(context.resources, stores_resource_key).get_stores()
    try:
        job_runs = _all_job_runs(stores, tenant, environment, run.run_id)
        definition_id = request.job_definition_id if request else None
        if definition_id is None:
            ids = {r.job_definition_id for r in job_runs if r.job_definition_id}
            if len(ids) != 1:
                return "no single job definition to take action profiles from"
            definition_id = ids.pop()
        version = request.job_definition_version if request else None
        definition = stores.job_definitions.get(tenant, environment, definition_id, version)
        if definition is None:
            what = f"{definition_id}@{version}" if version else definition_id
            return f"job definition {what} does not exist in {tenant}/{environment}"
        message = getattr(context.dagster_event, "message", None) if failed else None
        if not job_runs:
            if not failed:
                return "it recorded no job run"
            job_runs = [_placeholder_run(stores, definition, run, message)]
        run_actions(
            stores,
            tenant,
            environment,
            [r.job_id for r in job_runs],
            definition,
            run_failed=failed,
            run_error=message,
            dagster_run_id=run.run_id,
            dagster_job_name=run.job_name,
            input_uri=request.blob_uri if request else None,
            settings=settings,
            log=context.log,
        )
    except StoreError as exc:
        # The store is unreachable: the actions of this run are lost (the sensor cursor moves on);
        # say so loudly rather than fail the tick.
        context.log.error(f"run {run.run_id}: actions not run, the DQ store failed ({redact(str(exc))})")
    return None


def build_action_sensors(
    monitored_jobs: Sequence[Any],
    *,
    environment: str,
    tenants: Sequence[str] | None = None,
    stores_resource_key: str = "dq_stores",
    settings: ActionSettings | None = None,
    name: str = "dq_actions",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> list[RunStatusSensorDefinition]:
    """Two run status sensors (``<name>_on_success``, ``<name>_on_failure``) that run the action
    profiles after every run of ``monitored_jobs`` (see the module docstring for why sensors).

    The tenant, environment and job definition of a run come from its ``dq/*`` tags (set by the
    sensors of ``dq_dagster.schedules``), else from a ``JobDefinitionRunConfig`` in its run config,
    else the tenant partition and the job runs' ``job_definition_id``. ``tenants`` (optional)
    restricts the tenants served. A run that failed before recording any job run gets one
    (status failed) so the failure and its action outcomes are on record.
    """
    validate_id(environment, "environment")
    allowed = frozenset(validate_id(t, "tenant") for t in tenants) if tenants is not None else None
    resolved = settings or ActionSettings()
    if not monitored_jobs:
        raise InvalidArtifactError("monitored_jobs must name at least one job", field="monitored_jobs")

    def make(failed: bool) -> RunStatusSensorDefinition:
        def _fn(context: RunStatusSensorContext) -> None:
            # Always None: a returned value (e.g. a SkipReason) would end the tick after this run,
            # leaving the other finished runs for later ticks.
            why_not = _handle_run(
                context,
                failed=failed,
                environment=environment,
                tenants=allowed,
                stores_resource_key=stores_resource_key,
                settings=resolved,
            )
            if why_not is not None:
                context.log.info(f"run {context.dagster_run.run_id}: no actions: {why_not}")

        which = "failure" if failed else "success"
        return RunStatusSensorDefinition(
            name=f"{name}_on_{which}",
            run_status=DagsterRunStatus.FAILURE if failed else DagsterRunStatus.SUCCESS,
            run_status_sensor_fn=_fn,
            minimum_interval_seconds=minimum_interval_seconds,
            description=(
                f"Runs the job definitions' action profiles after each {which} of "
                f"{', '.join(getattr(j, 'name', '?') for j in monitored_jobs)} ({environment})."
            ),
            monitored_jobs=list(monitored_jobs),
            default_status=default_status,
            required_resource_keys={stores_resource_key},
        )

    return [make(False), make(True)]
