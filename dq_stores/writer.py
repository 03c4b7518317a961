"""``JobRunWriter``: turns one DQ output into a job run with its stored result, and reads it back.

An output is a ``ValidationReport``, ``CleansingReport``, ``ProfilingSnapshot`` or cleansed data
(a polars or pandas DataFrame). ``write`` records a ``JobRun`` (type, status, timings, contract,
where it came from) under a job id derived from where it came from (run, step, asset, partition,
output), so a retried step rewrites the same record instead of adding one; then it stores the
result through ``JobRunStore.put_result`` (inline in SQL when small, else in the results
location, hash recorded) and returns what a UI needs to show (pass rate, row count, a table of
failed rules). Cleansed DataFrames are stored the same way, as Parquet bytes
(``application/vnd.apache.parquet``, result type ``cleansed_data``) on a cleansing job run, so
every backend (SQL inline, local folder, Azure Blob) keeps them with the same claim check and
hash verification.

This module is plain Python: no Dagster import (the IO manager in ``dq_dagster.io_manager`` is a
thin layer over it). polars / pandas are imported only when a DataFrame is written or read.

Why one module of ~570 lines: it is one pipeline (report -> job run -> claim-checked result) whose
steps share the run-building helpers; split, each part would import the others.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pydantic

from dq_stores.canonical import canonical_json
from dq_stores.errors import InvalidArtifactError, NotFoundError, ScopeViolationError
from dq_stores.metrics import report_metrics
from dq_stores.models import (
    REPORT_MODELS,
    CleansingReport,
    JobRun,
    JobRunStatus,
    JobType,
    OrchestratorInfo,
    ProfilingSnapshot,
    Report,
    ReportStatus,
    ResultRef,
    RuleResult,
    RunContractRef,
    RunSummary,
    Severity,
    ValidationReport,
)
from dq_stores.models.common import utcnow
from dq_stores.models.job_runs import check_transition
from dq_stores.scoped import ScopedJobRunStore

__all__ = [
    "CLEANSED_DATA",
    "JOB_ID_PREFIX",
    "PARQUET",
    "FrameLibrary",
    "JobRunWriter",
    "OutputOrigin",
    "ResultTable",
    "UnsupportedOutputError",
    "WrittenRun",
    "derive_job_id",
    "frame_library",
    "frame_to_parquet",
    "parquet_to_frame",
]

JOB_ID_PREFIX = "dq-"
PARQUET = "application/vnd.apache.parquet"
CLEANSED_DATA = "cleansed_data"
MAX_TABLE_ROWS = 100
"""Rows of the failed-rule / anomaly table kept for the UI (the full list is in the result)."""

FrameLibrary = Literal["polars", "pandas"]
_FROM_REPORT_STATUS = {
    ReportStatus.PASSED: JobRunStatus.SUCCEEDED,
    ReportStatus.WARNING: JobRunStatus.WARNING,
    ReportStatus.FAILED: JobRunStatus.FAILED,
}


class UnsupportedOutputError(TypeError):
    """The output is neither a DQ report nor a DataFrame, so there is no job run to record."""


def derive_job_id(
    run_id: str,
    step_key: str | None = None,
    asset_key: str | None = None,
    partition_key: str | None = None,
    output_name: str | None = None,
) -> str:
    """``dq-`` + the first 32 hex digits of the sha256 of where an output came from.

    The same run, step, asset, partition and output always give the same id (a retried step
    rewrites its job run); any difference gives another id. Parts are length-prefixed so no two
    different tuples encode alike.
    """
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArtifactError("run_id must be a non-empty string", field="run_id")
    digest = hashlib.sha256()
    for part in (run_id, step_key, asset_key, partition_key, output_name):
        raw = b"\x00" if part is None else b"\x01" + part.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return JOB_ID_PREFIX + digest.hexdigest()[:32]


@dataclass(frozen=True)
class OutputOrigin:
    """Where an output came from: the orchestrator's run, step, asset, partition and output."""

    run_id: str
    step_key: str | None = None
    asset_key: str | None = None
    partition_key: str | None = None
    output_name: str | None = None
    job_name: str | None = None
    system: str = "dagster"

    @property
    def job_id(self) -> str:
        return derive_job_id(self.run_id, self.step_key, self.asset_key, self.partition_key, self.output_name)

    def orchestrator_info(self) -> OrchestratorInfo:
        return OrchestratorInfo(
            system=self.system,
            run_id=self.run_id,
            asset_key=self.asset_key,
            partition_key=self.partition_key,
            step_key=self.step_key,
            job_name=self.job_name,
        )


@dataclass(frozen=True)
class ResultTable:
    """A small table for the UI: column (name, type) pairs and rows of plain values."""

    name: str
    """``failed_rules`` (validation), ``anomalies`` (profiling) or ``rejection_reasons`` (cleansing)."""
    columns: list[tuple[str, str]]
    rows: list[dict[str, str | int | float | bool | None]]
    total: int
    """How many rows there were before truncation to ``MAX_TABLE_ROWS``."""


@dataclass(frozen=True)
class WrittenRun:
    """What ``write`` recorded, and the figures a UI shows about it."""

    job_run: JobRun
    result: ResultRef
    pass_rate: float | None
    row_count: int | None
    table: ResultTable | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)
    """For DataFrames: (column name, dtype) pairs."""
    replaced_status: JobRunStatus | None = None
    """Set when a retry's outcome differed from the recorded one and replaced it."""

    @property
    def job_id(self) -> str:
        return self.job_run.job_id


# -- DataFrames ---------------------------------------------------------------------------------


def frame_library(obj: Any) -> FrameLibrary | None:
    """``"polars"`` or ``"pandas"`` when ``obj`` is such a DataFrame, else ``None``.

    Looks in ``sys.modules`` only: an object cannot be a polars frame unless polars is imported,
    so checking costs no import.
    """
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(obj, pl.DataFrame | pl.LazyFrame):
        return "polars"
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.DataFrame):
        return "pandas"
    return None


def frame_to_parquet(frame: Any) -> tuple[bytes, FrameLibrary, list[tuple[str, str]], int]:
    """Parquet bytes of a polars/pandas DataFrame (a polars LazyFrame is collected), its library,
    its (column, dtype) pairs and its row count.
    """
    library = frame_library(frame)
    buffer = io.BytesIO()
    if library == "polars":
        if not hasattr(frame, "write_parquet"):  # a LazyFrame
            frame = frame.collect()
        frame.write_parquet(buffer)
        columns = [(str(name), str(dtype)) for name, dtype in frame.schema.items()]
        rows = int(frame.height)
    elif library == "pandas":
        # pandas' own writer keeps the index and pandas dtypes (pyarrow metadata) for read-back.
        frame.to_parquet(buffer, engine="pyarrow")
        columns = [(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
        rows = len(frame)
    else:
        raise UnsupportedOutputError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}")
    return buffer.getvalue(), library, columns, rows


def parquet_to_frame(data: bytes, library: FrameLibrary = "polars") -> Any:
    """A DataFrame of ``library`` read from Parquet bytes."""
    if library == "polars":
        import polars as pl

        return pl.read_parquet(io.BytesIO(data))
    if library == "pandas":
        import importlib

        # pandas ships no type stubs; it is used here through this one call.
        pd = importlib.import_module("pandas")
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    raise InvalidArtifactError(f"unknown DataFrame library {library!r}; use polars or pandas", field="frame")


# -- reports -> job run fields ------------------------------------------------------------------


def _job_type(report: Report) -> JobType:
    return JobType(report.report_type)


def _status(report: Report) -> JobRunStatus:
    if isinstance(report, ValidationReport):
        return _FROM_REPORT_STATUS[ReportStatus(report.status)]
    # Cleansing and profiling reports carry no status field; one they set in metadata wins.
    explicit = report.metadata.get("status")
    if isinstance(explicit, str):
        if explicit in {s.value for s in ReportStatus}:
            return _FROM_REPORT_STATUS[ReportStatus(explicit)]
        if explicit in {s.value for s in JobRunStatus} and JobRunStatus(explicit).is_terminal:
            return JobRunStatus(explicit)
    if isinstance(report, ProfilingSnapshot) and report.anomalies:
        hard = any(Severity(a.severity) is Severity.HARD for a in report.anomalies)
        return JobRunStatus.FAILED if hard else JobRunStatus.WARNING
    if isinstance(report, ProfilingSnapshot) and any(c.anomalous for c in report.anomaly_checks):
        return JobRunStatus.WARNING  # a metric outside its learned band warns, never fails
    return JobRunStatus.SUCCEEDED


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _summary(report: Report) -> RunSummary:
    if isinstance(report, ValidationReport):
        return RunSummary(
            row_count=report.row_count,
            rules_total=len(report.rules),
            rules_failed=len(report.failed_rules),
            pass_rate=report.pass_rate,
            metrics={
                "rows_failed": float(report.rows_failed),
                **_rule_metrics(report),
                **report_metrics(report),
            },
        )
    if isinstance(report, CleansingReport):
        return RunSummary(
            row_count=report.rows_out,
            rows_in=report.rows_in,
            rows_out=report.rows_out,
            rows_rejected=report.rows_rejected,
            pass_rate=_ratio(max(report.rows_in - report.rows_rejected, 0), report.rows_in),
        )
    total = len(report.expectations)
    failed = len(report.anomalies)
    return RunSummary(
        row_count=report.row_count,
        rules_total=total,
        rules_failed=failed,
        pass_rate=_ratio(total - failed, total),
        metrics={"columns": float(len(report.columns)), **_profile_metrics(report), **report_metrics(report)},
    )


# Per-rule and per-column figures ride on the run summary so that trend charts (the docs site) and
# history readers need the run records only, never every stored report. Keys follow
# ``AnomalyCheck.key``; ``anomaly:<key>.low|high|anomalous`` carry the band a run was checked against.
SUMMARY_RULE_METRIC = "rule:{rule_id}.failure_rate"
SUMMARY_NULL_RATIO = "{column}.null_ratio"


def _rule_metrics(report: ValidationReport) -> dict[str, float]:
    return {SUMMARY_RULE_METRIC.format(rule_id=r.rule_id): float(r.failure_rate) for r in report.rules}


def _profile_metrics(report: ProfilingSnapshot) -> dict[str, float]:
    metrics = {SUMMARY_NULL_RATIO.format(column=c.column): float(c.null_ratio) for c in report.columns}
    for check in report.anomaly_checks:
        figures = {
            "observed": check.observed,
            "low": check.expected_low,
            "high": check.expected_high,
            "anomalous": 1.0 if check.anomalous else 0.0,
        }
        for name, value in figures.items():
            if value is not None and math.isfinite(value):
                metrics[f"anomaly:{check.key}.{name}"] = float(value)
    return metrics


def _message(report: Report, summary: RunSummary) -> str:
    if isinstance(report, ValidationReport):
        return (
            f"{summary.rules_failed} of {summary.rules_total} rules failed; "
            f"{report.rows_failed} of {report.row_count} rows failed a hard rule"
        )
    if isinstance(report, CleansingReport):
        return f"{report.rows_in} rows in, {report.rows_out} out, {report.rows_rejected} rejected"
    text = f"{len(report.columns)} columns profiled; {summary.rules_failed} of {summary.rules_total} expectations breached"
    anomalous = [c.key for c in report.anomaly_checks if c.anomalous]
    if anomalous:
        text += f"; anomalies in {', '.join(anomalous[:10])}" + (" ..." if len(anomalous) > 10 else "")
    return text


def _measured(rule: RuleResult) -> str | None:
    """What a thresholded (quality) rule measured against its threshold, or that the rule was
    not evaluated; None for the other rules, whose counts say it all.
    """
    if not rule.evaluated:
        return "not evaluated"
    if rule.threshold is None:
        return None
    return f"{rule.measured_value} (must be {rule.threshold})"


def _table(report: Report) -> ResultTable | None:
    if isinstance(report, ValidationReport):
        failed = sorted(report.failed_rules, key=lambda r: (-r.failed_count, r.rule_id))
        # Samples of failing values are left out on purpose: they may hold personal data.
        return ResultTable(
            name="failed_rules",
            columns=[
                ("rule_id", "string"),
                ("rule_type", "string"),
                ("column", "string"),
                ("severity", "string"),
                ("failed_count", "int"),
                ("checked_count", "int"),
                ("failure_rate", "float"),
                ("measured", "string"),
            ],
            rows=[
                {
                    "rule_id": r.rule_id,
                    "rule_type": r.rule_type,
                    "column": r.column,
                    "severity": Severity(r.severity).value,
                    "failed_count": r.failed_count,
                    "checked_count": r.checked_count,
                    "failure_rate": r.failure_rate,
                    "measured": _measured(r),
                }
                for r in failed[:MAX_TABLE_ROWS]
            ],
            total=len(failed),
        )
    if isinstance(report, ProfilingSnapshot):
        anomalies = report.anomalies
        return ResultTable(
            name="anomalies",
            columns=[
                ("column", "string"),
                ("metric", "string"),
                ("observed", "float"),
                ("min_threshold", "float"),
                ("max_threshold", "float"),
                ("severity", "string"),
            ],
            rows=[
                {
                    "column": a.column,
                    "metric": a.metric,
                    "observed": a.observed,
                    "min_threshold": a.min_threshold,
                    "max_threshold": a.max_threshold,
                    "severity": Severity(a.severity).value,
                }
                for a in anomalies[:MAX_TABLE_ROWS]
            ],
            total=len(anomalies),
        )
    reasons = sorted(report.rejection_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return ResultTable(
        name="rejection_reasons",
        columns=[("reason", "string"), ("rows", "int")],
        rows=[{"reason": reason, "rows": count} for reason, count in reasons[:MAX_TABLE_ROWS]],
        total=len(reasons),
    )


# -- the writer ---------------------------------------------------------------------------------


class JobRunWriter:
    """Records DQ outputs as job runs of one scope (the scoped store fixes tenant + environment).

    ``offload``: ``None`` lets the store decide by size (``offload_threshold``), ``True`` always
    writes results to the results location, ``False`` keeps them inline. When no results
    location is configured and the backend can keep results inline, results stay inline whatever
    their size rather than fail.
    """

    def __init__(
        self,
        job_runs: ScopedJobRunStore,
        *,
        offload: bool | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not isinstance(job_runs, ScopedJobRunStore):
            raise TypeError(f"job_runs must be a ScopedJobRunStore, got {type(job_runs).__name__}")
        self.job_runs = job_runs
        self.offload = offload
        self._clock = clock

    def __repr__(self) -> str:
        return f"JobRunWriter({self.job_runs.scope}, offload={self.offload!r})"

    @staticmethod
    def supports(obj: Any) -> bool:
        """Whether ``obj`` is an output this writer records."""
        return isinstance(obj, Report) or (frame_library(obj) is not None)

    # writing ----------------------------------------------------------------------------------
    def write(
        self,
        output: Any,
        origin: OutputOrigin,
        *,
        contract_id: str | None = None,
        contract_version: str | None = None,
        dataset_type: str | None = None,
        job_definition_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> WrittenRun:
        """Record ``output`` as the job run of ``origin`` and store its result.

        Contract and dataset arguments fill in what the output does not say (a report's own
        values win). Raises ``UnsupportedOutputError`` for other objects, ``ScopeViolationError``
        for a report of another tenant/environment, and the store's errors.
        """
        scope = self.job_runs.scope
        result_type: str
        columns: list[tuple[str, str]] = []
        metadata: dict[str, Any] = {}
        if origin.output_name is not None:
            metadata["output_name"] = origin.output_name
        if isinstance(output, Report):
            for name, value, expected in (
                ("tenant_id", output.tenant_id, scope.tenant),
                ("environment", output.environment, scope.environment),
            ):
                if value is not None and value != expected:
                    raise ScopeViolationError(
                        f"{output.report_type} report {name} {value!r} differs from the scope {scope} it is written to"
                    )
            job_type = _job_type(output)
            status = _status(output)
            summary = _summary(output)
            message: str | None = _message(output, summary)
            contract_id = output.contract_id or contract_id
            contract_version = output.contract_version or contract_version
            dataset_type = output.dataset_type or dataset_type
            started_at, completed_at = output.started_at, output.completed_at
            payload: bytes = canonical_json(output)
            content_type, result_type = "application/json", str(output.report_type)
            table = _table(output)
            pass_rate, row_count = summary.pass_rate, summary.row_count
            engine = output.metadata.get("engine")
            if isinstance(engine, str):
                # Which engine ran (polars, polars-batches, sql:<dialect>): on the run record too.
                metadata["engine"] = engine
        elif frame_library(output) is not None:
            payload, library, columns, row_count = frame_to_parquet(output)
            metadata["dataframe"] = library
            job_type, status = JobType.CLEANSING, JobRunStatus.SUCCEEDED
            summary = RunSummary(row_count=row_count, rows_out=row_count)
            message = f"{row_count} cleansed rows, {len(columns)} columns"
            started_at = completed_at = None
            content_type, result_type = PARQUET, CLEANSED_DATA
            table, pass_rate = None, None
        else:
            raise UnsupportedOutputError(
                f"the JobRun IO manager stores ValidationReport, CleansingReport, ProfilingSnapshot or a "
                f"polars/pandas DataFrame, not {type(output).__name__}"
            )

        job_id = origin.job_id
        now = self._clock()
        existing = self.job_runs.get_entry(job_id)
        previous = existing.artifact if existing is not None else None
        replaced: JobRunStatus | None = None
        if previous is not None and not check_transition(JobRunStatus(previous.status), status):
            # A retried step came out differently (e.g. failed, then passed): the newer attempt
            # is the truth for this (run, step, asset, partition), so it replaces the record.
            replaced = JobRunStatus(previous.status)
            self.job_runs.delete_with_result(job_id)
            previous = None

        try:
            run = JobRun(
                job_id=job_id,
                tenant_id=scope.tenant,
                environment=scope.environment,
                job_type=job_type,
                status=status,
                job_definition_id=job_definition_id,
                contract=RunContractRef(contract_id=contract_id, version=contract_version)
                if contract_id
                else None,
                dataset_type=dataset_type,
                # A retry keeps the first attempt's times, so an unchanged outcome is a no-op put.
                submitted_at=previous.submitted_at if previous and previous.submitted_at else now,
                started_at=started_at or (previous.started_at if previous else None) or now,
                completed_at=completed_at or (previous.completed_at if previous else None) or now,
                orchestrator=origin.orchestrator_info(),
                summary=summary,
                # Keep pointing at the stored result until put_result swaps it, so a reader never
                # sees a run without its result in between.
                result=previous.result if previous else None,
                message=message,
                tags=dict(tags or {}),
                metadata=metadata,
            )
        except pydantic.ValidationError as exc:
            raise InvalidArtifactError.from_pydantic(exc, what="job run") from exc
        self.job_runs.put(run)
        ref = self.job_runs.put_result(
            job_id, payload, content_type=content_type, result_type=result_type, offload=self._offload()
        )
        stored = run.model_copy(update={"result": ref})
        return WrittenRun(
            job_run=stored,
            result=ref,
            pass_rate=pass_rate,
            row_count=row_count,
            table=table,
            columns=columns,
            replaced_status=replaced,
        )

    def _offload(self) -> bool | None:
        store = self.job_runs.store
        if self.offload is None and store.payloads is None and store.supports_inline_results:
            return False
        return self.offload

    # reading ----------------------------------------------------------------------------------
    def find_latest(self, asset_key: str, partition_key: str | None = None) -> JobRun | None:
        """The newest job run recorded for ``asset_key`` (and ``partition_key``), if any."""
        page = self.job_runs.list(asset_key=asset_key, partition_key=partition_key, limit=1)
        return page.items[0] if page.items else None

    def read(self, job_id: str, *, frame: FrameLibrary | None = None) -> Any:
        """The stored result of ``job_id``, hash-verified: its report model, or a DataFrame
        (of ``frame``, default: the library it was written from) for cleansed data.
        """
        run = self.job_runs.require(job_id)
        if run.result is None:
            raise NotFoundError(f"job run {job_id} in {self.job_runs.scope} has no stored result")
        data = self.job_runs.get_result(job_id)
        return _decode(run, data, frame)

    def read_latest(
        self, asset_key: str, partition_key: str | None = None, *, frame: FrameLibrary | None = None
    ) -> Any:
        """The result of the newest job run of ``asset_key``/``partition_key``; ``NotFoundError``
        if there is none.
        """
        run = self.find_latest(asset_key, partition_key)
        if run is None:
            where = f"{asset_key} partition {partition_key}" if partition_key else asset_key
            raise NotFoundError(f"no job run recorded for {where} in {self.job_runs.scope}")
        return self.read(run.job_id, frame=frame)


def _decode(run: JobRun, data: bytes, frame: FrameLibrary | None) -> Any:
    assert run.result is not None
    result_type = run.result.result_type or ""
    model = REPORT_MODELS.get(result_type)
    if model is not None:
        try:
            return model.model_validate_json(data)
        except pydantic.ValidationError as exc:
            raise InvalidArtifactError.from_pydantic(exc, what=f"stored {result_type} report") from exc
    if result_type == CLEANSED_DATA or run.result.content_type == PARQUET:
        written = run.metadata.get("dataframe")
        library: FrameLibrary = frame or ("pandas" if written == "pandas" else "polars")
        return parquet_to_frame(data, library)
    if run.result.content_type == "application/json":
        return json.loads(data)
    return data
