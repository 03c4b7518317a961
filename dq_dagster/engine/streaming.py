"""Files larger than memory: CSV and Parquet validated on polars' streaming engine.

``validate_file(path, contract)`` gives the report ``validate`` gives on the same rows, reading
the file in batches: every rule but uniqueness is one streaming aggregate (counts, checked
counts, bounded samples, rows failing any hard rule), whose memory does not grow with the
number of rows. Uniqueness cannot stream (a value's first and last occurrence may be anywhere),
so it runs out of core: one streaming pass writes each row's key and row number to ``buckets``
Parquet files by a hash of the key (equal keys land in the same bucket), then each bucket is
deduplicated in memory on its own, and the duplicated row numbers (only those) join the
streaming aggregate. Peak memory is about one bucket plus the streaming engine's buffers; the
spill goes to a temporary folder (``spill_dir``) deleted afterwards.

Profiling and cleansing of files still load them (``profile(pl.scan_parquet(...))``): top values
and histograms need the whole column. No rule logic here (rules.py), no report assembly
(validate.py).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from dq_dagster.engine.rules import RuleExprs, RulePlan, RuleSpec, compile_rules, prepare_frame
from dq_dagster.engine.validate import _aggregate, _check_condition, _Evaluated, assemble_report
from dq_stores.models import DataContract, DatasetContract, ValidationReport
from dq_stores.models.common import utcnow

__all__ = ["ENGINE", "scan_file", "validate_file"]

ENGINE = "polars-streaming"
_ROW = "__dq_row__"
_BUCKET = "__dq_bucket__"
_BUCKET_BYTES = 64 * 1024 * 1024
"""Input bytes per uniqueness bucket: a bucket's keys then take a few hundred MB at most."""


def scan_file(path: str | os.PathLike[str], file_format: str | None = None) -> pl.LazyFrame:
    """A lazy scan of a CSV or Parquet file (by ``file_format``, else by extension); CSV is read
    with ``pl.read_csv``'s defaults, so both give the same columns and types.
    """
    p = Path(path)
    fmt = (file_format or p.suffix.lstrip(".")).lower()
    if fmt in ("parquet", "pq"):
        return pl.scan_parquet(p)
    if fmt in ("csv", "txt"):
        return pl.scan_csv(p)
    raise ValueError(f"{p}: unknown file format {fmt!r} (expected csv or parquet)")


def validate_file(
    path: str | os.PathLike[str],
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    file_format: str | None = None,
    buckets: int | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Validate a CSV or Parquet file with bounded memory (see the module docstring).

    ``buckets``: how many spill files uniqueness uses (default: one per 64 MB of input);
    ``metadata["engine"]`` is ``polars-streaming``.
    """
    started = utcnow()
    plan = contract if isinstance(contract, RulePlan) else compile_rules(contract, dataset_type)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    lf = scan_file(path, file_format)
    uniques = [s for s in plan.rules if s.kind == "unique" and s.build is not None]
    if uniques:
        lf = lf.with_row_index(_ROW)
    prep = prepare_frame(lf, plan.dataset)
    columns = [c for c in prep.schema.names() if c != _ROW]
    if buckets is None:
        buckets = max(1, math.ceil(Path(path).stat().st_size / _BUCKET_BYTES))

    spill = Path(tempfile.mkdtemp(prefix="dq-unique-", dir=spill_dir))
    try:
        evaluated: list[_Evaluated] = []
        pending: dict[str, tuple[str, bool]] = {}
        duplicates: dict[tuple[str, ...], pl.Series] = {}
        for spec in plan.rules:
            if spec.build is None:
                continue
            missing = [c for c in spec.columns if c not in columns]
            if missing:
                names = ", ".join(missing)
                if spec.vacuous_if_missing:
                    pending[spec.rule_id] = (f"optional column {names} absent: nothing to check", True)
                else:
                    pending[spec.rule_id] = (f"not evaluated: column {names} missing", False)
                continue
            exprs = spec.build(prep.refs)
            if spec.kind == "unique":
                exprs = _external_unique(spec, exprs, prep.frame, duplicates, spill, buckets)
            elif exprs.condition is not None:
                problem = _check_condition(prep.frame, exprs.condition)
                if problem is not None:
                    pending[spec.rule_id] = (f"not evaluated: {problem}", False)
                    continue
            evaluated.append(_Evaluated(spec, exprs, len(evaluated)))
        row = _aggregate(prep.frame, evaluated, streaming=True)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    keys = {ev.spec.rule_id: ev.key for ev in evaluated}
    return assemble_report(plan, columns, row, keys, pending, started, engine=ENGINE)


def _external_unique(
    spec: RuleSpec,
    exprs: RuleExprs,
    frame: pl.LazyFrame,
    duplicates: dict[tuple[str, ...], pl.Series],
    spill: Path,
    buckets: int,
) -> RuleExprs:
    """The rule's failure mask as "this row's number is among the duplicated ones"."""
    keys = tuple(spec.params.get("keys") or spec.columns)
    if keys not in duplicates:
        duplicates[keys] = _duplicated_rows(frame, keys, spill / f"k{len(duplicates)}", buckets)
    rows = duplicates[keys]
    return RuleExprs(pl.col(_ROW).is_in(rows.implode()), exprs.checked, exprs.sample)


def _duplicated_rows(frame: pl.LazyFrame, keys: tuple[str, ...], folder: Path, buckets: int) -> pl.Series:
    # The typed key values (as the rule compares them), complete rows only, spilled by hash.
    key_cols = [pl.col(k).alias(f"k{i}") for i, k in enumerate(keys)]
    names = [f"k{i}" for i in range(len(keys))]
    complete = pl.all_horizontal([pl.col(n).is_not_null() for n in names])
    bucket = (
        pl.struct(names).hash(seed=0x5EED) % buckets
        if len(names) > 1
        else pl.col(names[0]).hash(0x5EED) % buckets
    )
    staged = frame.select(pl.col(_ROW), *key_cols).filter(complete).with_columns(bucket.alias(_BUCKET))
    folder.mkdir(parents=True)
    staged.sink_parquet(pl.PartitionBy(folder, key=_BUCKET, include_key=False), mkdir=True)
    found: list[pl.Series] = []
    for file in sorted(folder.rglob("*.parquet")):
        part = pl.scan_parquet(file)
        dup = pl.struct(names).is_duplicated() if len(names) > 1 else pl.col(names[0]).is_duplicated()
        found.append(part.filter(dup).select(_ROW).collect().to_series())
        file.unlink()  # free the disk as we go
    if not found:
        return pl.Series(_ROW, [], dtype=pl.UInt32)
    return pl.concat(found).sort()
