"""HTML pages of the data-docs site: the layout (inline CSS, no script, nothing fetched at view
time) and one function per page kind (index, scope, dataset, run), from plain values to text.

Rendering only: nothing here reads a store or writes a file (``dq_stores.docs.site`` does).
Every value is HTML-escaped; links are relative so the site works from a folder, ``file://``
or static website hosting. Pages hold no build time, so an unchanged page renders to the same
bytes and an incremental build can leave it alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from dq_stores.canonical import format_timestamp
from dq_stores.docs.charts import Band, Point, Series, VersionMark, bar_chart, format_number, line_chart
from dq_stores.models import (
    CleansingReport,
    JobDefinition,
    JobRun,
    ProfilingSnapshot,
    ValidationReport,
)
from dq_stores.models.reports import Report, RuleResult

__all__ = [
    "DatasetSummary",
    "LatestRun",
    "RunRow",
    "ScopeSummary",
    "dataset_page",
    "dataset_slug",
    "index_page",
    "run_page",
    "scope_page",
]

NO_DATASET = "(no dataset)"
MAX_SERIES = 10
"""Lines per chart (per rule, per column): the highest ones."""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:10px 24px}header a{color:#93c5fd}
main{padding:16px 24px;max-width:1240px}h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:22px 0 8px}
h3{font-size:15px;margin:14px 0 6px}a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px}th,td{border:1px solid #e5e7eb;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.s-succeeded,.s-passed,.s-true{background:#d1fae5;color:#065f46}.s-failed,.s-false{background:#fee2e2;color:#991b1b}
.s-warning{background:#fef3c7;color:#92400e}.s-running,.s-pending,.s-cancelled,.s-skipped{background:#e5e7eb;color:#374151}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}figure.chart{background:#fff;border:1px solid #e5e7eb;margin:0;padding:6px}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}svg .grid{stroke:#e5e7eb}svg .tick{font-size:10px;fill:#6b7280}
svg .line{stroke-width:1.6}svg .band{fill:#93c5fd;opacity:.35}svg .anomaly{fill:none;stroke:#dc2626;stroke-width:2.2}
svg .version-change{stroke:#7c3aed;stroke-dasharray:4 3}svg .version-label{font-size:10px;fill:#7c3aed}
svg .bar{fill:#60a5fa}.legend{font-size:12px}.legend .key{margin-right:10px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
pre{background:#fff;border:1px solid #e5e7eb;padding:8px;overflow:auto;max-height:420px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dl.facts dt{color:#6b7280}dl.facts dd{margin:0}
.masked{color:#6b7280;font-style:italic}.anomalous td{background:#fee2e2}.muted{color:#6b7280}
"""


# -- the values pages are made of ------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """What the dataset and scope pages need of one run: its record's summary, never its report."""

    job_id: str
    job_type: str
    status: str
    time: datetime | None
    dataset: str
    contract_id: str | None
    contract_version: str | None
    row_count: int | None
    pass_rate: float | None
    rows_rejected: int | None
    rules_total: int | None
    rules_failed: int | None
    metrics: Mapping[str, float]
    message: str | None

    @classmethod
    def of(cls, run: JobRun) -> RunRow:
        summary = run.summary
        metrics = {}
        if summary is not None:
            # Only what a chart draws: per-rule, per-column and anomaly figures.
            metrics = {
                k: v
                for k, v in summary.metrics.items()
                if k.startswith(("rule:", "anomaly:")) or k.endswith(".null_ratio")
            }
        return cls(
            job_id=run.job_id,
            job_type=str(run.job_type),
            status=str(run.status),
            time=run.sort_time,
            dataset=run.dataset_type or NO_DATASET,
            contract_id=run.contract.contract_id if run.contract else None,
            contract_version=run.contract.version if run.contract else None,
            row_count=summary.row_count if summary else None,
            pass_rate=summary.pass_rate if summary else None,
            rows_rejected=summary.rows_rejected if summary else None,
            rules_total=summary.rules_total if summary else None,
            rules_failed=summary.rules_failed if summary else None,
            metrics=metrics,
            message=run.message,
        )


@dataclass(frozen=True)
class LatestRun:
    """The newest run of a dataset for one job type, as the scope and dataset pages show it."""

    job_id: str
    status: str
    time: datetime | None


@dataclass
class DatasetSummary:
    """One dataset of a scope, for the scope page and the index."""

    name: str
    slug: str
    runs: int = 0
    latest: dict[str, LatestRun] = field(default_factory=dict)
    """Newest run per job type."""


@dataclass
class ScopeSummary:
    tenant: str
    environment: str
    runs: int = 0
    datasets: int = 0
    failed_latest: int = 0
    """Datasets whose newest run of some job type failed."""
    latest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "environment": self.environment,
            "runs": self.runs,
            "datasets": self.datasets,
            "failed_latest": self.failed_latest,
            "latest": self.latest,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScopeSummary:
        return cls(
            tenant=str(data["tenant"]),
            environment=str(data["environment"]),
            runs=int(data.get("runs", 0)),
            datasets=int(data.get("datasets", 0)),
            failed_latest=int(data.get("failed_latest", 0)),
            latest=data.get("latest"),
        )


def dataset_slug(name: str) -> str:
    """A file name for a dataset type (free text): readable, and unique by a short hash."""
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "dataset"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# -- small pieces ----------------------------------------------------------------------------------


def _t(value: datetime | None) -> str:
    return format_timestamp(value) if value is not None else "-"


def _status(value: str | bool | None) -> str:
    if value is None:
        return "-"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    label = {"true": "passed", "false": "failed"}.get(text, text)
    return f'<span class="status s-{escape(text)}">{escape(label)}</span>'


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f"<td>{_status(value)}</td>"
    if isinstance(value, (int, float)):
        return f'<td class="num">{format_number(value)}</td>'
    if value is None:
        return '<td class="muted">-</td>'
    return f"<td>{value}</td>"  # already HTML (callers escape text)


def _table(
    table_id: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], row_class: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if i < len(row_class) and row_class[i] else ""
        body.append(f"<tr{cls}>{''.join(_cell(v) for v in row)}</tr>")
    if not body:
        return f'<p class="muted" id="{escape(table_id)}">none</p>'
    return (
        f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _facts(items: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _page(title: str, crumbs: Sequence[tuple[str, str | None]], body: str) -> str:
    trail = " / ".join(_link(h, t) if h else escape(t) for t, h in crumbs)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} - dq data docs</title><style>{CSS}</style></head>"
        f"<body><header>dq data docs &nbsp; {trail}</header><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def _sample(rule: RuleResult) -> str:
    if not rule.sample:
        return '<span class="muted">-</span>'
    values = ", ".join(escape(json.dumps(v, ensure_ascii=False)) for v in rule.sample)
    return f'<span class="masked" title="masked">{values} (masked)</span>' if rule.sample_masked else values


def _rules_table(table_id: str, rules: Sequence[RuleResult]) -> str:
    return _table(
        table_id,
        [
            "rule",
            "type",
            "column",
            "severity",
            "checked",
            "failed",
            "failure rate",
            "passed",
            "sample of failing values",
        ],
        (
            [
                escape(r.rule_id),
                escape(r.rule_type),
                escape(r.column or "-"),
                escape(str(r.severity)),
                r.checked_count,
                r.failed_count,
                r.failure_rate,
                r.passed,
                _sample(r),
            ]
            for r in rules
        ),
        ["" if r.passed else "anomalous" for r in rules],
    )


# -- index and scope -----------------------------------------------------------------------------------


def index_page(scopes: Sequence[ScopeSummary]) -> str:
    rows = [
        [
            _link(f"{s.tenant}/{s.environment}/index.html", s.tenant),
            escape(s.environment),
            s.datasets,
            s.runs,
            s.failed_latest,
            escape(s.latest or "-"),
        ]
        for s in scopes
    ]
    body = _table(
        "scopes", ["tenant", "environment", "datasets", "runs", "datasets failing now", "newest run"], rows
    )
    return _page("Tenants and environments", [("index", None)], body)


def scope_page(scope: ScopeSummary, datasets: Sequence[DatasetSummary], recent: Sequence[RunRow]) -> str:
    rows = []
    for d in datasets:
        latest = [d.latest[k] for k in ("validation", "cleansing", "profiling") if k in d.latest]
        newest = max((r.time for r in latest if r.time), default=None)
        rows.append(
            [
                _link(f"datasets/{d.slug}.html", d.name),
                d.runs,
                *(
                    _status(d.latest[k].status) if k in d.latest else None
                    for k in ("validation", "cleansing", "profiling")
                ),
                escape(_t(newest)),
            ]
        )
    body = "<h2>Datasets</h2>" + _table(
        "datasets", ["dataset", "runs", "validation", "cleansing", "profiling", "newest run"], rows
    )
    body += "<h2>Newest runs</h2>" + _runs_table("recent-runs", recent, "runs/")
    crumbs = [("index", "../../index.html"), (f"{scope.tenant} / {scope.environment}", None)]
    return _page(f"{scope.tenant} / {scope.environment}", crumbs, body)


def _runs_table(table_id: str, runs: Sequence[RunRow], prefix: str, with_dataset: bool = True) -> str:
    headers = ["run", "time", "type", "status", "rows", "pass rate", "rules failed", "contract version"]
    if with_dataset:
        headers.insert(1, "dataset")
    rows = []
    for r in runs:
        row: list[Any] = [
            _link(f"{prefix}{r.job_id}.html", r.job_id),
            escape(_t(r.time)),
            escape(r.job_type),
            _status(r.status),
            r.row_count,
            r.pass_rate,
            f"{r.rules_failed} of {r.rules_total}" if r.rules_total is not None else None,
            escape(r.contract_version or "-"),
        ]
        if with_dataset:
            row.insert(1, escape(r.dataset))
        rows.append(row)
    return _table(table_id, headers, rows)


# -- dataset -----------------------------------------------------------------------------------------


def _band(metrics: Mapping[str, float], key: str) -> Band | None:
    low, high = metrics.get(f"anomaly:{key}.low"), metrics.get(f"anomaly:{key}.high")
    if low is None and high is None:
        return None
    return Band(low, high, metrics.get(f"anomaly:{key}.anomalous", 0.0) >= 0.5)


def dataset_page(
    tenant: str,
    environment: str,
    summary: DatasetSummary,
    history: Sequence[RunRow],
    latest_rules: tuple[LatestRun, Sequence[RuleResult]] | None,
    total_runs: int,
) -> str:
    """``history`` is oldest first (at most the newest ``MAX_HISTORY`` runs)."""
    n = len(history)
    labels = (_t(history[0].time), _t(history[-1].time)) if history else ("", "")
    versions: list[VersionMark] = []
    previous: str | None = None
    for x, r in enumerate(history):
        version = r.contract_version
        if version is not None and previous is not None and version != previous:
            versions.append(VersionMark(x, version))
        previous = version or previous

    def point(x: int, r: RunRow, value: float, key: str | None = None) -> Point:
        return Point(
            x,
            value,
            f"{r.job_id}, {_t(r.time)}",
            f"../runs/{r.job_id}.html",
            _band(r.metrics, key) if key else None,
        )

    by_type: dict[str, Series] = {}
    rows: dict[str, Series] = {}
    rejected = Series("rows rejected")
    rules: dict[str, Series] = {}
    nulls: dict[str, Series] = {}
    monitored: dict[str, Series] = {}
    drawn_keys: set[str] = set()
    for x, r in enumerate(history):
        if r.pass_rate is not None:
            by_type.setdefault(r.job_type, Series(r.job_type)).points.append(point(x, r, r.pass_rate))
        if r.row_count is not None:
            rows.setdefault(r.job_type, Series(r.job_type)).points.append(
                point(x, r, r.row_count, "row_count")
            )
            drawn_keys.add("row_count")
        if r.rows_rejected is not None:
            rejected.points.append(point(x, r, r.rows_rejected))
        for key, value in r.metrics.items():
            if key.startswith("rule:") and key.endswith(".failure_rate"):
                rule_id = key[len("rule:") : -len(".failure_rate")]
                rules.setdefault(rule_id, Series(rule_id)).points.append(point(x, r, value, key))
                drawn_keys.add(key)
            elif key.endswith(".null_ratio") and not key.startswith("anomaly:"):
                column = key[: -len(".null_ratio")]
                nulls.setdefault(column, Series(column)).points.append(point(x, r, value, key))
                drawn_keys.add(key)
    for x, r in enumerate(history):
        for key, value in r.metrics.items():
            if key.startswith("anomaly:") and key.endswith(".observed"):
                metric = key[len("anomaly:") : -len(".observed")]
                if metric not in drawn_keys:
                    monitored.setdefault(metric, Series(metric)).points.append(point(x, r, value, metric))

    def chart(chart_id: str, title: str, series: Iterable[Series], ratio: bool = False) -> str:
        listed = [s for s in series if s.points]
        if not listed:
            return ""
        if len(listed) > MAX_SERIES:
            # A chart of hundreds of lines says nothing (and weighs megabytes): the worst ones
            # (highest value ever, then anomalies) are drawn; the rule table holds the rest.
            listed.sort(key=lambda s: (-max(p.value for p in s.points), s.name))
            title = f"{title} (the {MAX_SERIES} highest of {len(listed)})"
            listed = listed[:MAX_SERIES]
        listed.sort(key=lambda s: s.name)
        return line_chart(
            chart_id,
            title,
            listed,
            x_count=n,
            x_labels=labels,
            versions=versions,
            y_range=(0.0, 1.0) if ratio else None,
        )

    charts = [
        chart("chart-pass-rate", "Pass rate", by_type.values(), ratio=True),
        chart("chart-row-count", "Row count", rows.values()),
        chart("chart-rows-rejected", "Rows rejected (cleansing)", [rejected]),
        chart("chart-rule-failure-rate", "Failure rate per rule", rules.values(), ratio=True),
        chart("chart-null-ratio", "Null ratio per column", nulls.values(), ratio=True),
        *(
            chart(f"chart-monitored-{i}", f"Monitored metric: {name}", [s])
            for i, (name, s) in enumerate(sorted(monitored.items()))
        ),
    ]
    status = _facts(
        (
            f"latest {k}",
            f"{_status(r.status)} {_link(f'../runs/{r.job_id}.html', r.job_id)} {escape(_t(r.time))}",
        )
        for k, r in sorted(summary.latest.items())
    )
    body = f'<h2>Latest status</h2><div id="latest-status">{status}</div>'
    shown = f"the newest {n:,} of {total_runs:,} runs" if n < total_runs else f"{n:,} runs"
    body += f'<h2>Trends</h2><p class="muted">Over {shown}, oldest left; dashed lines mark contract version changes; shaded: the expected band of an anomaly check, red rings: anomalies.</p>'
    body += '<div class="charts">' + "".join(charts) + "</div>"
    if latest_rules is not None:
        run, rule_results = latest_rules
        body += f"<h2>Rules (latest validation, {_link(f'../runs/{run.job_id}.html', run.job_id)})</h2>"
        body += _rules_table("rules", rule_results)
    body += "<h2>Runs</h2>" + _runs_table("runs", list(reversed(history)), "../runs/", with_dataset=False)
    crumbs = [
        ("index", "../../../index.html"),
        (f"{tenant} / {environment}", "../index.html"),
        (summary.name, None),
    ]
    return _page(summary.name, crumbs, body)


# -- run ----------------------------------------------------------------------------------------------


def _validation(report: ValidationReport) -> str:
    facts = _facts(
        [
            ("status", _status(str(report.status))),
            ("rows", format_number(report.row_count)),
            ("rows failing a hard rule", format_number(report.rows_failed)),
            ("pass rate", format_number(report.pass_rate)),
        ]
    )
    return f"<h2>Validation</h2>{facts}<h3>Rules</h3>{_rules_table('rules', report.rules)}"


def _cleansing(report: CleansingReport) -> str:
    facts = _facts(
        [
            ("rows in", format_number(report.rows_in)),
            ("rows out", format_number(report.rows_out)),
            ("rows rejected", format_number(report.rows_rejected)),
        ]
    )
    reasons = _table(
        "rejection-reasons",
        ["reason", "rows"],
        ([escape(k), v] for k, v in sorted(report.rejection_reasons.items())),
    )
    transformations = _table(
        "transformations",
        ["transformation", "column", "rows affected", "description"],
        (
            [escape(t.name), escape(t.column or "-"), t.rows_affected, escape(t.description or "")]
            for t in report.transformations
        ),
    )
    changes = _table(
        "column-changes",
        ["column", "values changed", "nulls filled", "values nulled"],
        (
            [escape(c.column), c.values_changed, c.nulls_filled, c.values_nulled]
            for c in report.column_changes
        ),
    )
    return (
        f"<h2>Cleansing</h2>{facts}<h3>Rejection reasons</h3>{reasons}"
        f"<h3>Transformations</h3>{transformations}<h3>Column changes</h3>{changes}"
    )


def _profiling(report: ProfilingSnapshot) -> str:
    columns = _table(
        "columns",
        ["column", "type", "count", "nulls", "null ratio", "distinct", "min", "max", "mean", "stddev"],
        (
            [
                escape(c.column),
                escape(c.data_type or "-"),
                c.count,
                c.null_count,
                c.null_ratio,
                c.distinct_count,
                escape(json.dumps(c.min, ensure_ascii=False)) if c.min is not None else None,
                escape(json.dumps(c.max, ensure_ascii=False)) if c.max is not None else None,
                c.mean,
                c.stddev,
            ]
            for c in report.columns
        ),
    )
    parts = [
        f"<h2>Profiling</h2>{_facts([('rows', format_number(report.row_count))])}<h3>Columns</h3>{columns}"
    ]
    for i, c in enumerate(report.columns):
        pieces = []
        if c.histogram is not None:
            pieces.append(
                bar_chart(f"histogram-{i}", f"{c.column}: histogram", c.histogram.edges, c.histogram.counts)
            )
        if c.top_values:
            note = ' <span class="masked">(masked)</span>' if c.top_values_masked else ""
            table = _table(
                f"top-values-{i}",
                ["value", "count"],
                ([escape(json.dumps(v.value, ensure_ascii=False)), v.count] for v in c.top_values),
            )
            pieces.append(f"<div><figcaption>{escape(c.column)}: top values{note}</figcaption>{table}</div>")
        if pieces:
            parts.append(f'<h3>{escape(c.column)}</h3><div class="charts">{"".join(pieces)}</div>')
    if report.expectations:
        parts.append(
            "<h3>Expectations</h3>"
            + _table(
                "expectations",
                ["column", "metric", "observed", "min", "max", "severity", "passed"],
                (
                    [
                        escape(e.column),
                        escape(e.metric),
                        e.observed,
                        e.min_threshold,
                        e.max_threshold,
                        escape(str(e.severity)),
                        e.passed,
                    ]
                    for e in report.expectations
                ),
                ["" if e.passed else "anomalous" for e in report.expectations],
            )
        )
    if report.anomaly_checks:
        parts.append(
            "<h3>Anomaly checks</h3>"
            + _table(
                "anomaly-checks",
                [
                    "metric",
                    "observed",
                    "expected low",
                    "expected high",
                    "history",
                    "direction",
                    "method",
                    "anomalous",
                ],
                (
                    [
                        escape(a.key),
                        a.observed,
                        a.expected_low,
                        a.expected_high,
                        a.history_size,
                        escape(str(a.direction)),
                        escape(
                            a.method
                            + (" (seasonal)" if a.seasonal else "")
                            + ("" if a.evaluated else ", too little history")
                        ),
                        '<span class="status s-failed">anomaly</span>'
                        if a.anomalous
                        else '<span class="status s-passed">normal</span>',
                    ]
                    for a in report.anomaly_checks
                ),
                ["anomalous" if a.anomalous else "" for a in report.anomaly_checks],
            )
        )
    return "".join(parts)


def run_page(
    run: JobRun,
    dataset_href: str | None,
    report: Report | None,
    report_note: str | None,
    job_definition: JobDefinition | None,
) -> str:
    summary = run.summary
    facts: list[tuple[str, str]] = [
        ("job run", escape(run.job_id)),
        ("type", escape(str(run.job_type))),
        ("status", _status(str(run.status))),
        (
            "dataset",
            _link(dataset_href, run.dataset_type or NO_DATASET)
            if dataset_href
            else escape(run.dataset_type or "-"),
        ),
        (
            "contract",
            escape(f"{run.contract.contract_id} version {run.contract.version or '-'}")
            if run.contract
            else "-",
        ),
        ("job definition", escape(run.job_definition_id or "-")),
        ("submitted", escape(_t(run.submitted_at))),
        ("started", escape(_t(run.started_at))),
        ("completed", escape(_t(run.completed_at))),
        ("message", escape(run.message or "-")),
    ]
    if run.orchestrator is not None:
        o = run.orchestrator
        where = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("run", o.run_id),
                ("asset", o.asset_key),
                ("partition", o.partition_key),
                ("step", o.step_key),
            )
            if v
        )
        facts.append(("orchestrator", escape(f"{o.system}: {where}" if where else o.system)))
    if run.result is not None:
        facts.append(
            (
                "result",
                escape(
                    f"{run.result.location}, {run.result.size_bytes:,} bytes, sha256 {run.result.sha256[:12]}"
                ),
            )
        )
    if run.tags:
        facts.append(("tags", escape(", ".join(f"{k}={v}" for k, v in sorted(run.tags.items())))))
    body = f'<div id="run-facts">{_facts(facts)}</div>'
    if summary is not None:
        body += "<h2>Summary</h2>" + _table(
            "summary",
            ["rows", "rows in", "rows out", "rows rejected", "rules", "rules failed", "pass rate"],
            [
                [
                    summary.row_count,
                    summary.rows_in,
                    summary.rows_out,
                    summary.rows_rejected,
                    summary.rules_total,
                    summary.rules_failed,
                    summary.pass_rate,
                ]
            ],
        )
    body += "<h2>Action outcomes</h2>" + _table(
        "actions",
        ["action", "profile", "status", "attempts", "error", "completed"],
        (
            [
                escape(a.action_type),
                escape(a.action_profile_id or "-"),
                _status(str(a.status)),
                a.attempts,
                escape(a.error or ""),
                escape(_t(a.completed_at)),
            ]
            for a in run.actions
        ),
    )
    if isinstance(report, ValidationReport):
        body += _validation(report)
    elif isinstance(report, CleansingReport):
        body += _cleansing(report)
    elif isinstance(report, ProfilingSnapshot):
        body += _profiling(report)
    if report_note:
        body += f'<p class="muted" id="report-note">{escape(report_note)}</p>'
    body += "<h2>Job definition</h2>"
    if job_definition is not None:
        text = json.dumps(job_definition.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True)
        body += f'<pre id="job-definition">{escape(text)}</pre>'
    else:
        body += f'<p class="muted" id="job-definition">{escape("none recorded" if not run.job_definition_id else f"{run.job_definition_id} is not in the store")}</p>'
    crumbs: list[tuple[str, str | None]] = [
        ("index", "../../../index.html"),
        (f"{run.tenant_id} / {run.environment}", "../index.html"),
    ]
    if dataset_href:
        crumbs.append((run.dataset_type or NO_DATASET, dataset_href))
    crumbs.append((run.job_id, None))
    return _page(f"Run {run.job_id}", crumbs, body)
