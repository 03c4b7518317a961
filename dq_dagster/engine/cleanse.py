"""Cleansing of a frame under its contract: a cleansed frame, a ``CleansingReport`` and the rows
it rejected.

Steps, in order, all driven by the contract:

1. per contract column: trim string values; normalise the case of a value that is not allowed
   but whose case-insensitive match is exactly one allowed value (``'eur'`` -> ``'EUR'``); cast
   to the declared type (a value that cannot be converted becomes null and is counted); NaN
   becomes null (it is missing, as in every rule);
2. reject rows whose primary key is null (after the cast), and, with ``reject_null_required``,
   rows with a null in a column whose not-null rule is hard;
3. drop exact duplicate rows, then rows repeating an earlier primary key (the first one stays).

Column steps run in one lazy pass that also yields their change counts; the row steps are
masks over the result. Columns outside the contract pass through untouched. Rejected rows keep
their (cleansed) values plus ``REJECT_REASON`` and ``ROW_INDEX`` (position in the input); they
are data, not report content, so they are not masked. Validation of the result is validate.py's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import polars as pl

from dq_dagster.engine.frames import FrameLike, to_lazy
from dq_dagster.engine.rules import RulePlan, resolve_dataset
from dq_dagster.engine.types import typed_column
from dq_stores.models import (
    CleansingReport,
    ColumnChange,
    ColumnConstraint,
    ColumnContract,
    DataContract,
    DatasetContract,
    DataType,
    Severity,
    Transformation,
)
from dq_stores.models.common import utcnow

__all__ = ["REJECT_REASON", "ROW_INDEX", "CleansingResult", "cleanse"]

REJECT_REASON = "_dq_reject_reason"
ROW_INDEX = "_dq_row_index"
_FLAG = "__dq_flag_"


class CleansingResult(NamedTuple):
    frame: pl.DataFrame
    report: CleansingReport
    rejected: pl.DataFrame
    """Rejected rows with ``REJECT_REASON`` and ``ROW_INDEX`` columns."""


def _case_map(allowed: list[Any]) -> tuple[list[str], dict[str, str]]:
    """Allowed strings, and lower-case -> allowed value where that match is unambiguous."""
    values = [str(v) for v in allowed]
    by_lower: dict[str, list[str]] = {}
    for v in values:
        by_lower.setdefault(v.lower(), []).append(v)
    return values, {k: v[0] for k, v in by_lower.items() if len(v) == 1}


class _ColumnPlan:
    """The expressions of one column's steps, and boolean flags that count what they changed."""

    def __init__(self, col: ColumnContract, dtype: pl.DataType, index: int) -> None:
        c = col.column_id
        self.name = c
        self.flags: dict[str, pl.Expr] = {}  # step name -> True where the step changed the value
        self.descriptions: dict[str, str] = {}
        cons = col.constraints or ColumnConstraint()
        cur = pl.col(c)
        is_str = isinstance(dtype, pl.String)
        if is_str:
            trimmed = cur.str.strip_chars()
            self._flag("trim", trimmed != cur, "leading and trailing whitespace removed")
            cur = trimmed
            if col.data_type == DataType.STRING and cons.allowed_values:
                values, lower = _case_map(cons.allowed_values)
                if lower:
                    fixed = cur.str.to_lowercase().replace_strict(lower, default=cur)
                    normalised = pl.when(cur.is_in(values)).then(cur).otherwise(fixed)
                    self._flag("normalise_case", normalised != cur, "case matched to an allowed value")
                    cur = normalised
        if dtype.is_float():
            # NaN is missing (rule semantics): cleansed data holds null, as every rule reads it.
            self._flag("nan_to_null", cur.is_nan(), "NaN replaced by null (missing)")
            cur = cur.fill_nan(None)
        tc = typed_column(cur, dtype, col)
        if tc.expr is not None:
            self._flag("cast", cur.is_not_null(), f"cast to {col.data_type.value}")
            typed = tc.expr
            if tc.dtype.is_float():
                nan = typed.is_nan().fill_null(False)
                self._flag("nan_to_null", nan, "NaN replaced by null (missing)")
                typed = typed.fill_nan(None)
            else:
                nan = pl.lit(False)
            if tc.may_fail:
                self.flags["__nulled"] = cur.is_not_null() & typed.is_null() & ~nan
            cur = typed
        self.expr = cur.alias(c)
        self.key = f"{_FLAG}{index}_"

    def _flag(self, step: str, changed: pl.Expr, description: str) -> None:
        self.flags[step] = changed.fill_null(False)
        self.descriptions[step] = description

    def flag_exprs(self) -> list[pl.Expr]:
        return [e.alias(f"{self.key}{step}") for step, e in self.flags.items()]


def cleanse(
    data: FrameLike,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    reject_null_required: bool = False,
) -> CleansingResult:
    """Cleanse ``data`` (polars or pandas) under the contract; see the module docstring."""
    started = utcnow()
    if isinstance(contract, RulePlan):
        data_contract, dataset = contract.contract, contract.dataset
    else:
        data_contract, dataset, _ = resolve_dataset(contract, dataset_type)
    header = RulePlan(data_contract, dataset, ()).header()
    lf = to_lazy(data)
    schema = lf.collect_schema()

    plans = [
        _ColumnPlan(col, schema[col.column_id], i)
        for i, col in enumerate(dataset.columns)
        if col.column_id in schema
    ]
    flag_cols = [e for p in plans for e in p.flag_exprs()]
    df = lf.with_row_index(ROW_INDEX).with_columns([*flag_cols, *(p.expr for p in plans)]).collect()
    flag_names = [n for n in df.columns if n.startswith(_FLAG)]
    sums = df.select([pl.col(n).sum() for n in flag_names]).row(0, named=True) if flag_names else {}
    # Any-step-changed per column, before the flags are dropped.
    changed_exprs = []
    for p in plans:
        steps = [f"{p.key}{s}" for s in p.flags if s in ("trim", "normalise_case")]
        if steps:
            changed_exprs.append(pl.any_horizontal(steps).sum().alias(p.name))
    changed = df.select(changed_exprs).row(0, named=True) if changed_exprs else {}
    df = df.drop(flag_names)
    rows_in = df.height

    transformations: list[Transformation] = []
    column_changes: list[ColumnChange] = []
    for p in plans:
        for step, description in p.descriptions.items():
            n = int(sums.get(f"{p.key}{step}") or 0)
            if n:
                transformations.append(
                    Transformation(name=step, column=p.name, rows_affected=n, description=description)
                )
        column_changes.append(
            ColumnChange(
                column=p.name,
                values_changed=int(changed.get(p.name) or 0),
                values_nulled=int(sums.get(f"{p.key}__nulled") or 0),
            )
        )

    keys = [k for k in dataset.primary_keys if k in df.columns]
    rejected: list[pl.DataFrame] = []
    reasons: dict[str, int] = {}

    def reject(reason: str, bad: pl.Expr, description: str) -> None:
        nonlocal df
        mask = df.select(bad.fill_null(False).alias("m")).to_series()
        n = int(mask.sum())
        reasons[reason] = n
        transformations.append(Transformation(name=reason, rows_affected=n, description=description))
        if n:
            rejected.append(df.filter(mask).with_columns(pl.lit(reason).alias(REJECT_REASON)))
            df = df.filter(~mask)

    if keys:
        reject(
            "null_primary_key",
            pl.any_horizontal([pl.col(k).is_null() for k in keys]),
            f"rows with a null primary key ({', '.join(keys)}) rejected",
        )
    if reject_null_required:
        hard = [
            c.column_id
            for c in dataset.columns
            if c.column_id in df.columns
            and (
                c.required
                or (c.constraints is not None and (c.constraints.required or c.constraints.disallow_nulls))
            )
            and (c.constraints is None or c.constraints.severity == Severity.HARD)
        ]
        if hard:
            reject(
                "null_required",
                pl.any_horizontal([pl.col(c).is_null() for c in hard]),
                "rows with a null in a required column rejected",
            )
    data_cols = [c for c in df.columns if c != ROW_INDEX]
    key = (pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)) if keys else None
    if key is not None and data_cols:
        # Copies of a row share its key, so only rows with a repeated key can be exact
        # duplicates: hash whole rows of that (small) subset instead of the whole frame.
        candidates = df.filter(key.is_duplicated())
        copies = candidates.filter(~pl.struct(data_cols).is_first_distinct()).get_column(ROW_INDEX)
        exact = pl.col(ROW_INDEX).is_in(copies.implode())
    else:
        exact = ~pl.struct(data_cols).is_first_distinct() if data_cols else pl.lit(False)
    reject("exact_duplicate", exact, "exact duplicate rows dropped (first kept)")
    if key is not None:
        reject(
            "duplicate_primary_key",
            ~key.is_first_distinct(),
            f"rows repeating a primary key ({', '.join(keys)}) dropped (first kept)",
        )

    rejected_df = (
        pl.concat(rejected, how="vertical")
        if rejected
        else df.clear().with_columns(pl.lit(None, dtype=pl.String).alias(REJECT_REASON))
    )
    out = df.drop(ROW_INDEX)
    missing = [c.column_id for c in dataset.columns if c.column_id not in schema]
    metadata: dict[str, Any] = {"dataset_contract_id": dataset.dataset_contract_id}
    if missing:
        metadata["missing_columns"] = missing
    report = CleansingReport(
        **header,
        started_at=started,
        completed_at=utcnow(),
        rows_in=rows_in,
        rows_out=out.height,
        rows_rejected=rejected_df.height,
        rejection_reasons=reasons,
        transformations=transformations,
        column_changes=column_changes,
        metadata=metadata,
    )
    return CleansingResult(out, report, rejected_df)
