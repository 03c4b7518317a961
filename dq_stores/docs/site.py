"""``build_site``: the static data-docs site built from the stores, incrementally.

Layout of ``OUT``::

    index.html                              tenants and environments
    <tenant>/<env>/index.html               datasets of the scope, newest runs
    <tenant>/<env>/datasets/<slug>.html     status, trend charts, rule table, runs
    <tenant>/<env>/runs/<job_id>.html       one run: its whole report, job definition, actions
    _manifest.json                          what each page was built from (for incremental builds)

Reads stream: runs are listed page by page (``JobRunStore.list``, keyset cursors) and a report
is read (``iter_run_result``) only when its run page must be (re)written, one at a time. Trend
charts come from the run records' summaries, so a dataset page never reads the reports of its
history. Memory is bounded by the runs kept per dataset for its charts (``MAX_HISTORY``).

Incremental: every page has a fingerprint of its inputs in the manifest (a run page: the run
record's canonical hash; a dataset or scope page: the fingerprints of its runs). A page whose
fingerprint is unchanged is neither rendered nor written; a re-rendered page is written only if
its bytes changed. Pages of runs that left a rebuilt scope (deleted, or before ``since``) are
removed. Building a subset of scopes (``tenant`` / ``environment``) leaves the other scopes'
pages alone; the index lists every scope built so far that the store still holds.

This module holds no HTML (``render``) and no Dagster import.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dq_stores.canonical import format_timestamp
from dq_stores.docs.render import (
    NO_DATASET,
    DatasetSummary,
    LatestRun,
    RunRow,
    ScopeSummary,
    dataset_page,
    dataset_slug,
    index_page,
    run_page,
    scope_page,
)
from dq_stores.errors import StoreError
from dq_stores.models import JobDefinition, JobRun
from dq_stores.models.reports import REPORT_MODELS, Report, RuleResult, ValidationReport
from dq_stores.scope import Scope
from dq_stores.stores import Stores

__all__ = ["MANIFEST", "MAX_HISTORY", "BuildResult", "build_site", "run_page_path"]

MANIFEST = "_manifest.json"
MAX_HISTORY = 1000
"""Runs per dataset kept for its charts and run table (the newest); older run pages remain."""
RECENT_RUNS = 50
"""Runs listed on a scope page."""
PAGE_SIZE = 200
RENDERER = "3"
"""Bumped when the HTML changes, so the next build rewrites every page once."""


def run_page_path(tenant: str, environment: str, job_id: str) -> str:
    """Path of a run's page relative to the site root (ids are path-safe, see ``scope.py``)."""
    return f"{tenant}/{environment}/runs/{job_id}.html"


@dataclass
class BuildResult:
    """What a build did: pages written, unchanged (not rendered or same bytes), removed."""

    out: Path
    scopes: int = 0
    runs: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    reports_read: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"{self.runs:,} runs in {self.scopes} scope(s): {len(self.written):,} page(s) written, "
            f"{self.unchanged:,} unchanged, {len(self.removed):,} removed in {self.seconds:.2f} s; "
            f"open {self.out / 'index.html'}"
        )


def _fingerprint(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


class _Site:
    """The output folder and its manifest: pages are written atomically and only when changed."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = str(out)
        self.result = BuildResult(out)
        data: dict[str, Any] = {}
        path = out / MANIFEST
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}  # a damaged manifest only costs a full rebuild
        if data.get("renderer") != RENDERER:
            data = {}
        self.pages: dict[str, dict[str, str]] = data.get("pages", {})
        self.scopes: dict[str, dict[str, Any]] = data.get("scopes", {})
        self.seen: set[str] = set()

    def fresh(self, path: str, fingerprint: str) -> bool:
        """Whether ``path`` was built from ``fingerprint`` and is still on disk (then it is kept)."""
        self.seen.add(path)
        entry = self.pages.get(path)
        if entry is not None and entry.get("fp") == fingerprint and os.path.isfile(f"{self.root}/{path}"):
            self.result.unchanged += 1
            return True
        return False

    def write(self, path: str, fingerprint: str, html: str) -> None:
        self.seen.add(path)
        body = html.encode("utf-8")
        sha = hashlib.sha256(body).hexdigest()
        target = self.out / path
        entry = self.pages.get(path)
        if entry is not None and entry.get("sha256") == sha and target.is_file():
            self.pages[path] = {"fp": fingerprint, "sha256": sha}
            self.result.unchanged += 1
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, target)
        self.pages[path] = {"fp": fingerprint, "sha256": sha}
        self.result.written.append(path)

    def remove_unseen(self, prefix: str) -> None:
        for path in [p for p in self.pages if p.startswith(prefix) and p not in self.seen]:
            with contextlib.suppress(FileNotFoundError):
                (self.out / path).unlink()
            del self.pages[path]
            self.result.removed.append(path)

    def save(self) -> None:
        data = {"renderer": RENDERER, "pages": self.pages, "scopes": self.scopes}
        path = self.out / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One build at a time per output folder (e.g. several Dagster steps refreshing the site)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _iter_documents(stores: Stores, scope: Scope, since: datetime | None) -> Iterator[bytes | str]:
    """The scope's run records as stored, newest first, page by page."""
    cursor: str | None = None
    while True:
        documents, cursor = stores.job_runs.list_documents(
            scope.tenant, scope.environment, since=since, limit=PAGE_SIZE, cursor=cursor
        )
        yield from documents
        if cursor is None:
            return


def _iter_dataset_runs(
    stores: Stores, scope: Scope, dataset: str, since: datetime | None
) -> Iterator[JobRun]:
    """The dataset's runs, newest first (the store's dataset filter is case-insensitive, hence
    the exact comparison).
    """
    wanted = None if dataset == NO_DATASET else dataset
    cursor: str | None = None
    while True:
        page = stores.job_runs.list(
            scope.tenant,
            scope.environment,
            dataset_type=wanted,
            since=since,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        yield from (r for r in page.items if r.dataset_type == wanted)
        cursor = page.next_cursor
        if cursor is None:
            return


def _read_report(stores: Stores, run: JobRun) -> tuple[Report | None, str | None]:
    """The run's report, or why there is none to show (never raises for a bad payload)."""
    ref = run.result
    if ref is None:
        return None, "no result is stored for this run"
    model = REPORT_MODELS.get(ref.result_type or "")
    if model is None or ref.content_type != "application/json":
        return (
            None,
            f"the result is {ref.result_type or ref.content_type} ({ref.size_bytes:,} bytes), not a report",
        )
    try:
        body = b"".join(stores.job_runs.iter_run_result(run))
        return model.model_validate_json(body), None
    except (StoreError, ValueError) as exc:
        return None, f"the stored report could not be read: {exc}"


class _ScopeBuild:
    """One scope: pass 1 lists the run records as stored and hashes them, decoding and rendering
    only runs not in the manifest (new or changed); pass 2 re-renders the dataset pages whose runs
    changed, reading only those datasets' runs (decoded, newest ``MAX_HISTORY``).
    """

    def __init__(self, stores: Stores, site: _Site, scope: Scope, since: datetime | None) -> None:
        self.stores = stores
        self.site = site
        self.scope = scope
        self.since = since
        self.prefix = f"{scope.tenant}/{scope.environment}/"
        self.definitions: dict[str, JobDefinition | None] = {}
        self.datasets: dict[str, DatasetSummary] = {}
        self.fingerprints: dict[str, Any] = {}
        self.recent: list[RunRow] = []
        self.runs = 0
        known = site.scopes.get(self.key, {}).get("runs", {})
        self.known: dict[str, list[Any]] = known if isinstance(known, dict) else {}
        self.seen_runs: dict[str, list[Any]] = {}

    @property
    def key(self) -> str:
        return f"{self.scope.tenant}/{self.scope.environment}"

    def _definition(self, job_definition_id: str | None) -> JobDefinition | None:
        if job_definition_id is None:
            return None
        if job_definition_id not in self.definitions:
            try:
                self.definitions[job_definition_id] = self.stores.job_definitions.get(
                    self.scope.tenant, self.scope.environment, job_definition_id
                )
            except StoreError:
                self.definitions[job_definition_id] = None
        return self.definitions[job_definition_id]

    def _decode(self, document: bytes | str) -> JobRun:
        return self.stores.job_runs.decode_in_scope(self.scope.tenant, self.scope.environment, document)

    def _run(self, document: bytes | str) -> tuple[str, list[Any], RunRow | None]:
        """Pass 1 for one record: (re)write its page if it is new or changed; return its hash,
        what the manifest keeps of it ([job_id, dataset, job type, status, run time]) and its
        row when it was decoded (new or changed records only).
        """
        raw = document.encode() if isinstance(document, str) else document
        fp = hashlib.sha256(raw).hexdigest()[:32]
        entry = self.known.get(fp)
        if entry is not None and self.site.fresh(self.prefix + f"runs/{entry[0]}.html", fp):
            self.seen_runs[fp] = entry
            if len(self.recent) < RECENT_RUNS:
                self.recent.append(RunRow.of(self._decode(document)))
            return fp, entry, None
        run = self._decode(document)
        row = RunRow.of(run)
        path = self.prefix + f"runs/{run.job_id}.html"
        if not self.site.fresh(path, fp):
            report, note = _read_report(self.stores, run)
            self.site.result.reports_read += report is not None
            slug = dataset_slug(row.dataset)
            html = run_page(
                run, f"../datasets/{slug}.html", report, note, self._definition(run.job_definition_id)
            )
            self.site.write(path, fp, html)
        entry = [
            run.job_id,
            row.dataset,
            row.job_type,
            row.status,
            format_timestamp(row.time) if row.time else None,
        ]
        self.seen_runs[fp] = entry
        if len(self.recent) < RECENT_RUNS:
            self.recent.append(row)
        return fp, entry, row

    def build(self) -> ScopeSummary:
        history_fps: dict[str, list[str]] = {}
        # Rows decoded in pass 1 (newest first); a dataset whose newest MAX_HISTORY runs were
        # all decoded (a first build) needs no second listing.
        rows: dict[str, list[RunRow]] = {}
        complete: dict[str, bool] = {}
        for document in _iter_documents(self.stores, self.scope, self.since):
            self.runs += 1
            fp, (job_id, dataset, job_type, status, when), row = self._run(document)
            summary = self.datasets.get(dataset)
            if summary is None:
                summary = self.datasets[dataset] = DatasetSummary(dataset, dataset_slug(dataset))
                history_fps[dataset], rows[dataset], complete[dataset] = [], [], True
            summary.runs += 1
            if job_type not in summary.latest:  # records come newest first
                time_ = datetime.fromisoformat(when) if when else None
                summary.latest[job_type] = LatestRun(job_id, status, time_)
            if len(history_fps[dataset]) < MAX_HISTORY:
                history_fps[dataset].append(fp)
                if row is None:
                    complete[dataset] = False
                elif complete[dataset]:
                    rows[dataset].append(row)
        failing = 0
        for name, summary in sorted(self.datasets.items()):
            if any(r.status == "failed" for r in summary.latest.values()):
                failing += 1
            fp = _fingerprint(*history_fps[name], str(summary.runs))
            path = self.prefix + f"datasets/{summary.slug}.html"
            if self.site.fresh(path, fp):
                continue
            if complete[name]:
                history = rows[name]
            else:
                listed = _iter_dataset_runs(self.stores, self.scope, name, self.since)
                history = [RunRow.of(r) for r in itertools.islice(listed, MAX_HISTORY)]
            history.reverse()  # oldest first for the charts
            html = dataset_page(
                self.scope.tenant,
                self.scope.environment,
                summary,
                history,
                self._latest_rules(summary),
                summary.runs,
            )
            self.site.write(path, fp, html)
        newest = self.recent[0].time if self.recent else None
        scope_summary = ScopeSummary(
            self.scope.tenant,
            self.scope.environment,
            runs=self.runs,
            datasets=len(self.datasets),
            failed_latest=failing,
            latest=format_timestamp(newest) if newest else None,
        )
        datasets = [self.datasets[k] for k in sorted(self.datasets)]
        self.site.write(self.prefix + "index.html", "", scope_page(scope_summary, datasets, self.recent))
        self.site.remove_unseen(self.prefix)
        return scope_summary

    def _latest_rules(self, summary: DatasetSummary) -> tuple[LatestRun, list[RuleResult]] | None:
        latest = summary.latest.get("validation")
        if latest is None:
            return None
        run = self.stores.job_runs.get(self.scope.tenant, self.scope.environment, latest.job_id)
        if run is None:
            return None
        report, _ = _read_report(self.stores, run)
        self.site.result.reports_read += report is not None
        if not isinstance(report, ValidationReport):
            return None
        return latest, list(report.rules)


def build_site(
    stores: Stores,
    out: str | os.PathLike[str],
    *,
    tenant: str | None = None,
    environment: str | None = None,
    since: datetime | None = None,
) -> BuildResult:
    """Build or refresh the data-docs site in ``out`` from ``stores``: every scope the store
    holds (``Stores.list_scopes``), or those of ``tenant`` / ``environment``; only runs at or
    after ``since`` when given. Safe to call concurrently for one folder (builds take turns).
    """
    started = time.perf_counter()
    root = Path(out)
    with _locked(root):
        site = _Site(root)
        scopes = stores.list_scopes(tenant, environment)
        for scope in scopes:
            build = _ScopeBuild(stores, site, scope, since)
            summary = build.build()
            site.scopes[build.key] = {"summary": summary.to_json(), "runs": build.seen_runs}
            site.result.runs += summary.runs
        site.result.scopes = len(scopes)
        # The index lists every scope built so far that the store still holds.
        held = {
            f"{s.tenant}/{s.environment}"
            for s in (scopes if tenant is None and environment is None else stores.list_scopes())
        }
        for key in [k for k in site.scopes if k not in held]:
            del site.scopes[key]
            site.remove_unseen(key + "/")
        listed = [ScopeSummary.from_json(site.scopes[k]["summary"]) for k in sorted(site.scopes)]
        site.write("index.html", "", index_page(listed))
        site.save()
    site.result.seconds = time.perf_counter() - started
    return site.result
