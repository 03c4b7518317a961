"""Profiling of a frame under its contract, producing a ``ProfilingSnapshot``.

Per column (contract columns first, in contract order, then any other column of the frame):
``count`` (non-null values), ``null_count``, ``null_ratio`` (of all rows), ``distinct_count``
(non-null distinct values), ``min`` / ``max`` (numbers, strings, dates), ``mean`` / ``stddev``
(numbers; sample standard deviation, non-finite floats left out), the ``top_k`` most frequent
values (ties by value) and an equal-width histogram of ``bins`` bins for numbers. Statistics
are taken on the declared type: a string column declared decimal is parsed first, as in
validation. Two lazy passes in all: one for every column's aggregates and top values, one for
every histogram (its edges need the min and max).

PII columns (``ColumnContract.is_pii``) get masked top values and min / max, no histogram (its
edges are data values), and expectations on their min / max report no observed value. The
contract's profiling expectations become ``ExpectationResult``s; a breach is an anomaly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from dq_dagster.engine.frames import FrameLike, to_json_scalar, to_lazy
from dq_dagster.engine.masking import mask_value
from dq_dagster.engine.rules import RAW_PREFIX, RulePlan, prepare_frame, resolve_dataset
from dq_dagster.engine.types import is_numeric
from dq_stores.models import (
    ColumnProfile,
    DataContract,
    DatasetContract,
    ExpectationResult,
    Histogram,
    ProfilingExpectation,
    ProfilingSnapshot,
    ValueCount,
)
from dq_stores.models.common import JsonScalar, utcnow

__all__ = ["finish_profile", "profile"]

_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)
_ORDERED = (pl.String, pl.Date, pl.Datetime, pl.Time, pl.Duration, pl.Boolean, pl.Categorical, pl.Enum)


@dataclass(frozen=True)
class _Col:
    name: str
    key: str
    dtype: pl.DataType
    declared: str | None
    pii: bool

    @property
    def numeric(self) -> bool:
        return is_numeric(self.dtype)

    @property
    def nested(self) -> bool:
        return isinstance(self.dtype, _NESTED)


def _finite(c: _Col) -> pl.Expr:
    x = pl.col(c.name)
    return x.filter(x.is_finite()) if c.dtype.is_float() else x.drop_nulls()


def _first_pass(c: _Col, top_k: int) -> list[pl.Expr]:
    x = pl.col(c.name)
    k = c.key
    aggs = [x.count().alias(f"{k}n"), x.null_count().alias(f"{k}z")]
    if c.nested:
        return aggs
    aggs.append(x.drop_nulls().n_unique().alias(f"{k}d"))
    if c.numeric:
        f = _finite(c)
        aggs += [f.min().alias(f"{k}lo"), f.max().alias(f"{k}hi"), f.count().alias(f"{k}fn")]
        aggs += [f.cast(pl.Float64).mean().alias(f"{k}mean"), f.cast(pl.Float64).std().alias(f"{k}sd")]
    elif isinstance(c.dtype, _ORDERED):
        aggs += [x.min().alias(f"{k}lo"), x.max().alias(f"{k}hi")]
    if top_k > 0:
        vc = x.drop_nulls().value_counts(name="__n")
        by = [vc.struct.field("__n"), vc.struct.field(c.name)]
        # top_k_by is a partial sort: cheap even when every value is distinct.
        aggs.append(vc.top_k_by(by, k=top_k, reverse=[False, True]).implode().alias(f"{k}top"))
    return aggs


def _histogram_expr(c: _Col, lo: float, hi: float, bins: int) -> pl.Expr:
    f = _finite(c).cast(pl.Float64)
    width = (hi - lo) / bins
    idx = ((f - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    return idx.value_counts(name="__n").implode().alias(f"{c.key}hist")


def _float(v: Any) -> float | None:
    if v is None:
        return None
    out = float(v)
    return out if math.isfinite(out) else None


def _top_values(raw: Any, c: _Col) -> list[ValueCount]:
    items = [(int(item["__n"]), item[c.name]) for item in raw or []]
    # Most frequent first, ties by value (the order top_k_by leaves is arbitrary); values of
    # one column share a type, so they compare, except NaN which sorts as text.
    try:
        items.sort(key=lambda it: (-it[0], it[1]))
    except TypeError:
        items.sort(key=lambda it: (-it[0], str(it[1])))
    out: list[ValueCount] = []
    for n, value in items:
        v: JsonScalar | None = to_json_scalar(value)
        out.append(ValueCount(value=mask_value(v) if c.pii else v, count=n))
    return out


def _observed(metric: str, prof: ColumnProfile | None, row_count: int) -> float | None:
    if metric == "row_count":
        return float(row_count)
    if prof is None:
        return None
    if metric == "null_ratio":
        return prof.null_ratio
    if metric == "null_count":
        return float(prof.null_count)
    if metric == "distinct_count":
        return float(prof.distinct_count)
    if metric == "distinct_ratio":
        return prof.distinct_count / prof.count if prof.count else None
    if metric in ("mean", "stddev"):
        return prof.mean if metric == "mean" else prof.stddev
    return None


def _expectation(
    column: str,
    exp: ProfilingExpectation,
    observed: float | None,
    *,
    hide: bool,
) -> ExpectationResult:
    if observed is None:
        passed = exp.min_threshold is None and exp.max_threshold is None
    else:
        passed = (exp.min_threshold is None or observed >= exp.min_threshold) and (
            exp.max_threshold is None or observed <= exp.max_threshold
        )
    return ExpectationResult(
        column=column,
        metric=exp.metric,
        observed=None if hide else observed,
        min_threshold=exp.min_threshold,
        max_threshold=exp.max_threshold,
        severity=exp.severity,
        passed=passed,
    )


def profile(
    data: FrameLike,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    top_k: int = 10,
    bins: int = 10,
) -> ProfilingSnapshot:
    """Profile every column of ``data`` and check the contract's profiling expectations."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    started = utcnow()
    if isinstance(contract, RulePlan):
        data_contract, dataset = contract.contract, contract.dataset
    else:
        data_contract, dataset, _ = resolve_dataset(contract, dataset_type)
    header = RulePlan(data_contract, dataset, ()).header()
    prep = prepare_frame(to_lazy(data), dataset)
    schema = prep.frame.collect_schema()
    contract_cols = {c.column_id: c for c in dataset.columns}

    names = [c.column_id for c in dataset.columns if c.column_id in schema]
    names += [n for n in schema.names() if n not in contract_cols and not n.startswith(RAW_PREFIX)]
    cols = []
    for i, name in enumerate(names):
        cc = contract_cols.get(name)
        declared = cc.data_type.value if cc else None
        cols.append(_Col(name, f"p{i}_", schema[name], declared, bool(cc and cc.is_pii)))

    aggs: list[pl.Expr] = [pl.len().alias("__rows")]
    for c in cols:
        aggs += _first_pass(c, top_k)
    row = prep.frame.select(aggs).collect().row(0, named=True)
    row_count = int(row["__rows"])

    hist_exprs: list[pl.Expr] = []
    ranges: dict[str, tuple[float, float]] = {}  # column -> finite (min, max), numbers only
    for c in cols:
        if not c.numeric:
            continue
        lo, hi = _float(row.get(f"{c.key}lo")), _float(row.get(f"{c.key}hi"))
        if lo is None or hi is None:
            continue
        ranges[c.name] = (lo, hi)
        if hi > lo and not c.pii:
            hist_exprs.append(_histogram_expr(c, lo, hi, bins))
    hist_row = prep.frame.select(hist_exprs).collect().row(0, named=True) if hist_exprs else {}

    profiles: dict[str, ColumnProfile] = {}
    for c in cols:
        k = c.key
        nn, nulls = int(row[f"{k}n"]), int(row[f"{k}z"])
        vmin, vmax = to_json_scalar(row.get(f"{k}lo")), to_json_scalar(row.get(f"{k}hi"))
        histogram = None
        if c.name in ranges and not c.pii:
            rlo, rhi = ranges[c.name]
            if rhi > rlo:
                counts = [0] * bins
                for item in hist_row.get(f"{k}hist") or []:
                    counts[int(item[c.name])] += int(item["__n"])
                edges = [rlo + (rhi - rlo) * i / bins for i in range(bins)] + [rhi]
                histogram = Histogram(edges=edges, counts=counts)
            else:
                histogram = Histogram(edges=[rlo, rhi], counts=[int(row[f"{k}fn"])])
        profiles[c.name] = ColumnProfile(
            column=c.name,
            data_type=c.declared or str(c.dtype),
            count=nn,
            null_count=nulls,
            null_ratio=nulls / row_count if row_count else 0.0,
            distinct_count=int(row.get(f"{k}d") or 0),
            min=mask_value(vmin) if c.pii else vmin,
            max=mask_value(vmax) if c.pii else vmax,
            mean=_float(row.get(f"{k}mean")),
            stddev=_float(row.get(f"{k}sd")),
            top_values=_top_values(row.get(f"{k}top"), c),
            top_values_masked=c.pii,
            histogram=histogram,
        )

    return finish_profile(header, dataset, row_count, profiles, ranges, started, engine="polars")


def finish_profile(
    header: dict[str, Any],
    dataset: DatasetContract,
    row_count: int,
    profiles: dict[str, ColumnProfile],
    ranges: dict[str, tuple[float, float]],
    started: datetime,
    *,
    engine: str,
) -> ProfilingSnapshot:
    """The snapshot of column profiles computed by any engine: the contract's profiling
    expectations checked against them; ``ranges`` holds each numeric column's finite (min, max).
    """
    expectations: list[ExpectationResult] = []
    for cc in dataset.columns:
        prof = profiles.get(cc.column_id)
        for exp in cc.profiling_expectations:
            if exp.metric in ("min", "max"):
                lo_hi = ranges.get(cc.column_id)
                observed = None if lo_hi is None else lo_hi[0 if exp.metric == "min" else 1]
            else:
                observed = _observed(exp.metric, prof, row_count)
            hide = cc.is_pii and exp.metric in ("min", "max")
            expectations.append(_expectation(cc.column_id, exp, observed, hide=hide))

    return ProfilingSnapshot(
        **header,
        started_at=started,
        completed_at=utcnow(),
        row_count=row_count,
        columns=list(profiles.values()),
        expectations=expectations,
        metadata={"dataset_contract_id": dataset.dataset_contract_id, "engine": engine},
    )
