"""Row 14: a Parquet delivery larger than memory (about 100M rows x 8 columns of billing data)
validated on polars' streaming engine (``validate_file``), in a fresh process whose peak resident
memory the kernel reports (``VmHWM``).

14a: the run's time against reading every column of the same file in the same batches (null
counts: the least any validation must do); 14b: its peak resident memory against the 2 GiB budget. The file is
generated in 5M-row chunks (ids renumbered so chunks never collide, every injected defect kept),
written to a temporary folder (``DQ_BENCH_TMP`` or the system's) and deleted afterwards; the
report must count exactly the defects injected. A large row: ``make bench-large``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import Config, Result, Stats, check, skipped
from bench.services import Services
from dq_dagster.examples.generator import DefectCounts, _mixed_seed, generate_billing

BUDGET_MB = 2048.0
CHUNK = 5_000_000


def write_large(path: Path, rows: int, chunk: int = CHUNK) -> dict[str, int]:
    """Write ``rows`` billing rows as one Parquet file; returns the expected failed count per rule
    (and ``__rows_failed``). Chunk k's ids are renumbered into [k * chunk, (k + 1) * chunk)."""
    import pyarrow.parquet as pq

    expected: dict[str, int] = {}
    writer: Any = None
    done = 0
    k = 0
    try:
        while done < rows:
            n = min(chunk, rows - done)
            df, counts = generate_billing(n, seed=k)
            # The generator's ids run from a random start; shift them to this chunk's range.
            start = int(np.random.default_rng(_mixed_seed(k, "TNT-001")).integers(0, 10**8 - n))
            num = pl.col("invoice_id").str.slice(4).cast(pl.Int64) - start + done
            prefix = pl.col("invoice_id").str.slice(0, 4)
            fixed = (
                pl.when(prefix == "INV-")
                .then(pl.lit("INV-") + num.cast(pl.String).str.zfill(8))
                .otherwise(prefix + num.cast(pl.String))
            )
            df = df.with_columns(fixed.alias("invoice_id"))
            table = df.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema, compression="zstd")
            writer.write_table(table, row_group_size=262_144)
            _add(expected, counts)
            done += n
            k += 1
    finally:
        if writer is not None:
            writer.close()
    return expected


def _add(expected: dict[str, int], counts: DefectCounts) -> None:
    for rule_id, n in counts.expected_failures().items():
        expected[rule_id] = expected.get(rule_id, 0) + n
    expected["__rows_failed"] = expected.get("__rows_failed", 0) + counts.rows_failing_hard_rules


def _probe(path: str, which: str) -> dict[str, Any]:
    """In a fresh process: the run, its seconds and the process's peak resident memory."""
    from dq_dagster.engine import validate_file
    from dq_dagster.examples.generator import billing_contract

    started = time.perf_counter()
    if which == "ours":
        report = validate_file(path, billing_contract())
        out: dict[str, Any] = {
            "failed": {r.rule_id: r.failed_count for r in report.rules},
            "rows_failed": report.rows_failed,
            "rows": report.row_count,
            "engine": report.metadata.get("engine"),
        }
    else:
        from dq_dagster.engine.streaming import iter_batches

        for batch in iter_batches(path):
            batch.null_count()
        out = {}
    out["seconds"] = time.perf_counter() - started
    out["peak_mb"] = _hwm_mb()
    return out


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status")


def _run(path: Path, which: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    code = f"import json; from bench.streaming import _probe; print(json.dumps(_probe({str(path)!r}, {which!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    rows = config.large_rows
    name = f"stream-validate a Parquet delivery of {rows:,} rows x 8 columns"
    if not os.path.exists("/proc/self/status"):
        yield skipped("14a", name, "latency", "", "needs Linux /proc (VmHWM)")
        return
    base = Path(os.environ.get("DQ_BENCH_TMP") or tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="dqbench-stream-", dir=base))
    try:
        path = folder / "billing.parquet"
        expected = write_large(path, rows)
        size_mb = path.stat().st_size / 2**20
        ours: list[dict[str, Any]] = []
        scans: list[dict[str, Any]] = []
        for _ in range(max(config.large_reps, 1)):
            ours.append(_run(path, "ours"))
            scans.append(_run(path, "scan"))
        first = ours[0]
        check(first["rows"] == rows, f"rows: {first['rows']} != {rows}")
        check(
            first["rows_failed"] == expected["__rows_failed"], "rows failing hard rules differ from injected"
        )
        for rule_id, n in expected.items():
            if rule_id != "__rows_failed":
                check(first["failed"][rule_id] == n, f"{rule_id}: {first['failed'][rule_id]} != injected {n}")
        details = {
            "file_mb": round(size_mb, 1),
            "rows": rows,
            "ours_peak_mb": [round(o["peak_mb"]) for o in ours],
            "scan_peak_mb": [round(s["peak_mb"]) for s in scans],
            "rows_per_second": [round(rows / o["seconds"]) for o in ours],
        }
        time_result = Result(
            "14a",
            f"{name}: time",
            "latency",
            "",
            None,
            baseline_name="reading every column of the same file in the same batches (null counts), fresh process",
            details=details,
        )
        time_result.ours = Stats.of([o["seconds"] for o in ours], "s")
        time_result.baseline = Stats.of([s["seconds"] for s in scans], "s")
        time_result.ratio = time_result.ours.median / time_result.baseline.median
        time_result.note = f"{rows / time_result.ours.median / 1e6:.1f}M rows/s, file {size_mb:.0f} MB"
        yield time_result.decide()
        mem = Result(
            "14b",
            f"{name}: peak resident memory",
            "memory",
            "<= 1 (2 GiB)",
            1.0,
            baseline_name="the 2 GiB budget (peak resident memory of the whole process, kernel VmHWM)",
            details=details,
        )
        mem.ours = Stats.of([o["peak_mb"] for o in ours], "MB")
        mem.baseline = Stats.of([BUDGET_MB], "MB")
        mem.ratio = mem.ours.max / BUDGET_MB
        yield mem.decide()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
