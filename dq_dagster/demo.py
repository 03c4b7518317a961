"""``python -m dq_dagster.demo``: seed the embedded store, run the billing pipeline for every
tenant, print the job runs the store now holds.

Steps: open the DQ stores the demo code location uses (``DQ_STORES_URL`` if set, else SQLite
under ``$DAGSTER_HOME/dq`` or ``.dq/`` in the current folder); import the bundled example
artifacts (validated first, idempotent: a second run writes nothing); load the demo's ``defs/``
folder (the ``DataQualityComponent`` reads its tenants from the store just seeded) and run its
``billing_dq_pipeline`` job for every tenant partition in this process; read the job runs back
through ``JobRunStore.list_by_tenant`` and print them as a table; build the static data-docs site
(``dq_stores.docs``) beside the store and say where it is; say how to open the UI.

While the demo's runs execute, ``DQ_STORES_DOCS_DIR`` (unless already set) names that site's folder,
so the IO manager refreshes it after each DQ output and every materialization links its run page
as ``dq/report``: what a deployment gets by setting ``docs_dir`` on the stores resource.

Dagster runs go to the instance under ``$DAGSTER_HOME`` when it is set (so ``dagster dev`` with the
same ``DAGSTER_HOME`` shows them), else to an ephemeral in-memory instance. Nothing here is
needed by the code location itself.
"""

# No ``from __future__ import annotations``, like the other Dagster-facing modules of this package.

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from dagster import DagsterInstance

from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes
from dq_dagster.definitions import ARTIFACTS_DIR, DATASET_TYPE, ENVIRONMENT, build_definitions
from dq_dagster.discovery import contracts_by_tenant
from dq_stores.docs import build_site
from dq_stores.models import JobRun
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.transfer import apply_import, load_artifacts, plan_import

__all__ = ["main"]

# Dagster's console logger prints every step event at DEBUG; the demo prints its own progress.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_COLUMNS = ("tenant", "asset", "job type", "status", "pass rate", "rows", "result", "job run id")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


JOB = f"{DATASET_TYPE}_dq_pipeline"


def _seed(stores: Stores, out: TextIO) -> None:
    artifacts, problems = load_artifacts([ARTIFACTS_DIR])
    if problems:
        raise SystemExit("bundled artifacts are invalid:\n" + "\n".join(f"  {p}" for p in problems))
    actions, problems = plan_import(stores, artifacts)
    if problems:
        raise SystemExit("cannot import the bundled artifacts:\n" + "\n".join(f"  {p}" for p in problems))
    counts: dict[str, int] = {}
    for done in apply_import(stores, actions):
        counts[done.action] = counts.get(done.action, 0) + 1
    words = {"create": "created", "update": "updated"}
    summary = ", ".join(f"{n} {words.get(action, action)}" for action, n in sorted(counts.items()))
    tenants = sorted({a.model.tenant_id for a in artifacts})
    _say(out, f"      {len(artifacts)} artifacts for tenants {', '.join(tenants)} / {ENVIRONMENT}: {summary}")


def _row(run: JobRun) -> tuple[str, ...]:
    summary = run.summary
    orchestrator = run.orchestrator
    asset = orchestrator.asset_key if orchestrator is not None and orchestrator.asset_key else "-"
    rate = f"{summary.pass_rate:.2%}" if summary is not None and summary.pass_rate is not None else "-"
    rows = str(summary.row_count) if summary is not None and summary.row_count is not None else "-"
    result = run.result.location if run.result is not None else "-"
    return (run.tenant_id, asset, str(run.job_type), str(run.status), rate, rows, result, run.job_id)


def _cli_hint(url: str) -> str:
    """The ``dq-stores`` command a user types in this folder to reach the demo's store: the script
    beside this interpreter (relative when below the folder), with ``--url`` naming the store,
    since the user's shell has no ``DAGSTER_HOME`` (``make demo`` set it for the demo only).
    """
    script = Path(sys.executable).with_name("dq-stores")
    try:
        shown = f"./{script.relative_to(Path.cwd())}" if script.is_relative_to(Path.cwd()) else str(script)
    except ValueError:
        shown = str(script)
    if "***" in url:  # a secret was redacted: the URL must come from the environment
        return f"{shown}  # with DQ_STORES_URL set as for the demo:"
    return f"{shlex.quote(shown)} --url {shlex.quote(url)}"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_COLUMNS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join("  " + line for line in lines)


def _docs_dir(url: str) -> Path:
    """Beside the demo's SQLite store (``.dq/docs`` or ``$DAGSTER_HOME/dq/docs``), else ``.dq/docs``."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).resolve().parent / "docs"
    return Path(".dq/docs").resolve()


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` for the block (as before it afterwards: the demo runs in tests too)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the demo; return the exit code (0: every run succeeded)."""
    del argv  # no options: configuration comes from the environment, as for the code location
    out = out or sys.stdout
    started = time.perf_counter()
    backend = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type=DATASET_TYPE, source=SourceAttributes(asset="raw_billing"))]
    ).stores_resource(resolved=True)
    home = os.environ.get("DAGSTER_HOME")

    _say(out, "[1/5] opening the DQ stores")
    with backend.open() as stores:
        stores_url = stores.url
        _say(out, f"      metadata: {redact(stores.url)}")
        payloads = stores.job_runs.payloads
        _say(out, f"      results:  {redact(repr(payloads)) if payloads is not None else 'inline only'}")
        _say(out, f"[2/5] importing the example artifacts from {ARTIFACTS_DIR}")
        _seed(stores, out)
        tenants = sorted(contracts_by_tenant(stores, ENVIRONMENT, [DATASET_TYPE])[DATASET_TYPE])

    defs = build_definitions()
    job = defs.resolve_job_def(JOB)
    steps = len(job.graph.node_defs)
    _say(out, f"[3/5] running {JOB} ({steps} steps) for each of {len(tenants)} tenants, read from the store")
    instance = DagsterInstance.get() if home else DagsterInstance.ephemeral()
    run_ids: dict[str, str] = {}
    failed = 0
    docs_dir = Path(os.environ.get("DQ_STORES_DOCS_DIR") or _docs_dir(stores_url))
    reports: list[str] = []
    with instance, _env("DQ_STORES_DOCS_DIR", str(docs_dir)):
        for tenant in tenants:
            t0 = time.perf_counter()
            result = job.execute_in_process(
                partition_key=tenant, instance=instance, run_config=_QUIET, raise_on_error=False
            )
            run_ids[result.run_id] = tenant
            for event in result.get_asset_materialization_events():
                materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
                link = materialization.metadata.get("dq/report")
                if link is not None:
                    reports.append(str(link.value))
            checks = result.get_asset_check_evaluations()
            failing = sorted(f"{c.check_name} ({c.severity.value})" for c in checks if not c.passed)
            state = "succeeded" if result.success else "FAILED"
            failed += not result.success
            _say(
                out,
                f"      {tenant}: run {result.run_id[:8]} {state} in {time.perf_counter() - t0:.1f} s; "
                f"{len(checks) - len(failing)}/{len(checks)} asset checks passed"
                + (f", failing: {', '.join(failing)}" if failing else ""),
            )

    _say(out, "[4/5] job runs of this demo, read back with JobRunStore.list_by_tenant (newest first)")
    rows: list[tuple[str, ...]] = []
    older = 0
    with backend.open() as stores:
        for tenant in tenants:
            for run in stores.job_runs.list_by_tenant(tenant, ENVIRONMENT):
                if run.orchestrator is not None and run.orchestrator.run_id in run_ids:
                    rows.append(_row(run))
                else:
                    older += 1
    _say(out, _table(rows) if rows else "  (no job runs recorded)")
    if older:
        _say(out, f"  ({older} job runs of earlier runs not shown)")
    if tenants:
        _say(out, "The same runs from the command line (every line starting with $ runs as printed):")
        cli = _cli_hint(stores_url)
        _say(out, f"  $ {cli} ls runs --tenant {tenants[0]} --env {ENVIRONMENT}")
        _say(out, f"  $ {cli} ls contracts --tenant {tenants[-1]} --env {ENVIRONMENT}")

    _say(out, "[5/5] data docs: the static site, refreshed after each DQ output of the runs above")
    with backend.open() as stores:
        built = build_site(stores, docs_dir)
    _say(
        out,
        f"      {built.runs} job runs in {built.scopes} scope(s); {len(built.written)} page(s) written now",
    )
    _say(out, f"      {len(reports)} materializations link their run page as dq/report, e.g.")
    if reports:
        _say(out, f"      {reports[0]}")
    _say(out, f"      open {(docs_dir / 'index.html').as_uri()}")
    _say(out, f"\nDone in {time.perf_counter() - started:.1f} s.")
    _say(out, "Open the Dagster UI on this code location:  make ui   (runs `dagster dev -w workspace.yaml`)")
    _say(
        out,
        f"then http://127.0.0.1:3000 -> Assets -> {DATASET_TYPE} group: materialize a tenant partition, see the",
    )
    _say(
        out,
        f"asset checks on {DATASET_TYPE}_cleansed and the dq/* metadata (job run id, pass rate, failed rules).",
    )
    _say(
        out,
        "A new tenant: `dq-stores import <folder with its contract>`, then Reload the code location in the UI.",
    )
    if not home:
        _say(
            out, "These runs went to an ephemeral Dagster instance; set DAGSTER_HOME to keep them for the UI."
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
