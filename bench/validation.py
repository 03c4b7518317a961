"""Rows 9-11: validation of 1M rows x 8 columns against the billing contract.

9: ``dq_dagster.engine.validate`` against the same rules hand-written as polars expressions, with
the same output (failed and checked count per rule, up to ten distinct failing values per rule,
rows failing any rule). 10: the peers on the same frame: pandera (polars backend; a
``DataFrameSchema`` written from the same rules, ``lazy=True`` so every failure is collected, as
ours does) and great-expectations 1.x when it is installed. 11: peak memory of a validation (the
high-water mark of resident memory above where it stood before, measured by the kernel in a fresh
process) against the in-memory size of the frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from bench.harness import Config, Result, Stats, check, compare, latency, skipped
from bench.services import Services
from dq_dagster.engine import compile_rules, validate
from dq_dagster.examples.generator import NET_RULE_ID, billing_contract, generate_billing

SEED = 42
SAMPLE = 10
INVOICE_RE = r"^INV-[0-9]{8}$"
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
CURRENCIES = ["EUR", "USD", "GBP"]
STATUSES = ["open", "paid", "void"]


def handwritten(df: pl.DataFrame) -> dict[str, Any]:
    """The billing rules as a competent engineer writes them in polars: one mask per rule (the
    primary key rules are the invoice_id rules), one pass for every count, sample and the rows
    failing any rule."""
    iid, email, cur = pl.col("invoice_id"), pl.col("customer_email"), pl.col("currency")
    gross, tax, net = pl.col("gross_amount"), pl.col("tax_amount"), pl.col("net_amount")
    date, status = pl.col("invoice_date"), pl.col("status")
    rules: dict[str, tuple[pl.Expr, pl.Expr, pl.Expr | None]] = {
        # rule id: (fails, checked, sample values)
        "invoice_id.not_null": (iid.is_null(), pl.len(), None),
        "invoice_id.unique": (iid.is_duplicated() & iid.is_not_null(), iid.count(), iid),
        "invoice_id.regex": (iid.str.contains(INVOICE_RE).not_().fill_null(False), iid.count(), iid),
        "customer_email.not_null": (email.is_null(), pl.len(), None),
        "customer_email.regex": (email.str.contains(EMAIL_RE).not_().fill_null(False), email.count(), email),
        "customer_email.max_length": ((email.str.len_chars() > 254).fill_null(False), email.count(), email),
        "currency.not_null": (cur.is_null(), pl.len(), None),
        "currency.allowed_values": (cur.is_in(CURRENCIES).not_().fill_null(False), cur.count(), cur),
        "gross_amount.not_null": (gross.is_null(), pl.len(), None),
        "gross_amount.min_value": ((gross < 0).fill_null(False), gross.count(), gross),
        "tax_amount.not_null": (tax.is_null(), pl.len(), None),
        "tax_amount.min_value": ((tax < 0).fill_null(False), tax.count(), tax),
        "net_amount.not_null": (net.is_null(), pl.len(), None),
        "net_amount.min_value": ((net < 0).fill_null(False), net.count(), net),
        "invoice_date.not_null": (date.is_null(), pl.len(), None),
        "status.allowed_values": (status.is_in(STATUSES).not_().fill_null(False), status.count(), status),
        NET_RULE_ID: (
            ((net - (gross - tax)).abs() <= 0.01).not_().fill_null(False),
            ((net - (gross - tax)).abs() <= 0.01).is_not_null().sum(),
            net,
        ),
    }
    names = list(rules)
    staged = df.lazy().with_columns([fail.alias(f"m{i}") for i, (fail, _, _) in enumerate(rules.values())])
    aggs: list[pl.Expr] = [pl.len().alias("rows")]
    for i, (_, checked, sample) in enumerate(rules.values()):
        mask = pl.col(f"m{i}")
        aggs += [mask.sum().alias(f"f{i}"), checked.alias(f"c{i}")]
        if sample is not None:
            aggs.append(
                sample.filter(mask)
                .head(SAMPLE * 10)
                .unique(maintain_order=True)
                .head(SAMPLE)
                .implode()
                .alias(f"s{i}")
            )
    aggs.append(pl.any_horizontal([pl.col(f"m{i}") for i in range(len(names))]).sum().alias("rows_failed"))
    row = staged.select(aggs).collect().row(0, named=True)
    return {
        "rows": row["rows"],
        "rows_failed": row["rows_failed"],
        "failed": {name: row[f"f{i}"] for i, name in enumerate(names)},
        "checked": {name: row[f"c{i}"] for i, name in enumerate(names)},
        "present": all(c in df.columns for c in df.columns),
    }


def pandera_schema() -> Any:
    """The same rules as a pandera (polars backend) ``DataFrameSchema``."""
    import pandera.polars as pa

    def net_rule(data: Any) -> pl.LazyFrame:
        diff = (pl.col("net_amount") - (pl.col("gross_amount") - pl.col("tax_amount"))).abs() <= 0.01
        result: pl.LazyFrame = data.lazyframe.select(diff.fill_null(True))
        return result

    return pa.DataFrameSchema(
        {
            "invoice_id": pa.Column(str, pa.Check.str_matches(INVOICE_RE), nullable=False, unique=True),
            "customer_email": pa.Column(
                str, [pa.Check.str_matches(EMAIL_RE), pa.Check.str_length(max_value=254)], nullable=False
            ),
            "currency": pa.Column(str, pa.Check.isin(CURRENCIES), nullable=False),
            "gross_amount": pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
            "tax_amount": pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
            "net_amount": pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
            "invoice_date": pa.Column(pl.Date, nullable=False),
            "status": pa.Column(str, pa.Check.isin(STATUSES), nullable=True),
        },
        checks=[pa.Check(net_rule, name=NET_RULE_ID)],
    )


def run_pandera(schema: Any, df: pl.DataFrame) -> int:
    """Validate collecting every failure (``lazy=True``); returns the number of failure cases."""
    import pandera.errors

    try:
        schema.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        return int(exc.failure_cases.height)
    return 0


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    df, _ = generate_billing(config.rows, SEED)
    contract = billing_contract()
    plan = compile_rules(contract)
    rows = f"{config.rows:,} rows x {df.width} columns"

    def ours() -> Any:
        return validate(df, plan)

    def baseline() -> Any:
        return handwritten(df)

    report, hand = ours(), baseline()
    by_rule = {r.rule_id: r for r in report.rules}
    for rule_id, failed in hand["failed"].items():
        check(
            by_rule[rule_id].failed_count == failed,
            f"{rule_id}: ours {by_rule[rule_id].failed_count}, hand-written {failed}",
        )
        check(by_rule[rule_id].checked_count == hand["checked"][rule_id], f"{rule_id}: checked counts differ")
    check(report.rows_failed == hand["rows_failed"], "rows failing any rule differ")

    slow = Config(**{**config.__dict__, "target_seconds": 0.0})  # one call per repetition
    if only is None or "9" in only:
        result = Result(
            "9",
            f"validate {rows} (billing contract, {len(plan.rules)} rules)",
            "latency",
            "<= 1.3",
            1.3,
            baseline_name="the same rules hand-written as polars expressions, one pass, same counts and samples",
        )
        yield latency(result, *compare(ours, baseline, slow))

    if only is None or "10" in only:
        schema = pandera_schema()
        check(run_pandera(schema, df) > 0, "pandera found no failures in data with defects")
        result = Result(
            "10a",
            f"validate {rows}: ours vs pandera {_version('pandera')} (polars backend)",
            "latency",
            "< 1 (faster)",
            0.999,
            baseline_name="pandera DataFrameSchema of the same rules, validate(lazy=True) on the same polars frame",
        )
        yield latency(result, *compare(ours, lambda: run_pandera(schema, df), slow))
        yield _great_expectations(df, ours, slow, rows)

    if only is None or "11" in only:
        yield _memory(config, df, rows)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _great_expectations(df: pl.DataFrame, ours: Any, config: Config, rows: str) -> Result:
    try:
        import great_expectations  # noqa: F401
    except ImportError:
        return skipped(
            "10b",
            f"validate {rows}: ours vs great-expectations 1.x",
            "latency",
            "< 1 (faster)",
            "not installed (not a dependency; it would need a `bench` extra)",
        )
    from bench.peers_gx import gx_validator

    run_gx, failures = gx_validator(df)
    report = ours()
    ours_failed = {r.rule_id: r.failed_count for r in report.rules}
    for rule_id, failed in failures(run_gx()).items():
        check(
            ours_failed[rule_id] == failed,
            f"great-expectations {rule_id}: {failed}, ours {ours_failed[rule_id]}",
        )
    result = Result(
        "10b",
        f"validate {rows}: ours vs great-expectations {_version('great-expectations')} (pandas)",
        "latency",
        "< 1 (faster)",
        0.999,
        baseline_name="great-expectations 1.x suite of the same rules on the frame as pandas (conversion not timed)",
    )
    return latency(result, *compare(ours, run_gx, config))


# -- 11: memory ----------------------------------------------------------------------------------


def _probe(path: str, which: str) -> dict[str, int]:
    """In a fresh process: load the frame, reset the kernel's resident high-water mark, validate,
    and report how far above the starting point resident memory went."""
    import gc

    frame = pl.read_ipc(path, memory_map=False)
    plan = compile_rules(billing_contract())
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = _status("VmRSS")
    if which == "ours":
        validate(frame, plan)
    else:
        handwritten(frame)
    return {"before": before, "peak": _status("VmHWM")}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory(config: Config, df: pl.DataFrame, rows: str) -> Result:
    result = Result(
        "11",
        f"peak memory validating {rows} (extra resident memory / frame size)",
        "memory",
        "<= 2.5",
        2.5,
        baseline_name="in-memory size of the DataFrame (polars estimated_size); hand-written polars peak in details",
    )
    if not os.path.exists("/proc/self/clear_refs"):
        return skipped(result.id, result.name, "memory", result.target, "needs Linux /proc (VmHWM)")
    size = df.estimated_size()
    root = Path(__file__).resolve().parents[1]
    peaks: dict[str, list[float]] = {"ours": [], "handwritten": []}
    with tempfile.TemporaryDirectory(prefix="dqbench-mem-") as folder:
        path = str(Path(folder) / "billing.arrow")
        df.write_ipc(path)
        for _ in range(max(config.reps, 1)):
            for which in peaks:
                code = f"import json; from bench.validation import _probe; print(json.dumps(_probe({path!r}, {which!r})))"
                out = subprocess.run(
                    [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
                ).stdout
                probe = json.loads(out.strip().splitlines()[-1])
                peaks[which].append((probe["peak"] - probe["before"]) / 2**20)
    mb = size / 2**20
    result.ours = Stats.of(peaks["ours"], "MB")
    result.baseline = Stats.of([mb], "MB")
    result.ratio = result.ours.median / mb
    result.details = {
        "frame_bytes": size,
        "ours_extra_peak_mb": peaks["ours"],
        "handwritten_extra_peak_mb": peaks["handwritten"],
    }
    result.note = (
        f"hand-written polars: {sorted(peaks['handwritten'])[len(peaks['handwritten']) // 2]:.0f} MB"
    )
    return result.decide()
