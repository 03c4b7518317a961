"""Profiling inside the database: ``profile_table`` gives the ``ProfilingSnapshot`` that
``profile`` gives on the same rows, computed by SQL aggregates.

Queries: one ``SELECT`` of every column's count, nulls, distinct count, min / max (finite numbers;
text in code-point order), mean and sample standard deviation; one ``GROUP BY`` per column for
its ``top_k`` values (most frequent first, ties by value, as polars); one ``SELECT`` for every
histogram (equal-width bins over the finite min..max, computed with the same float arithmetic).
Statistics are taken on the declared type, NaN counting as null, PII columns masked, exactly as
in profile.py; a column the SQL engine cannot convert to its declared type exactly (text declared
numeric) is profiled on its stored values and listed in ``metadata["stored_types"]``.
Mean and standard deviation may differ from polars' in the last bits (summation order).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dq_dagster.engine.frames import to_json_scalar
from dq_dagster.engine.masking import mask_value
from dq_dagster.engine.profile import finish_profile
from dq_dagster.engine.pushdown import (
    SqlEngineError,
    _Col,
    _columns,
    _count_if,
    _Dialect,
    _dialect,
    _reflect,
    open_engine,
)
from dq_dagster.engine.rules import RulePlan, resolve_dataset
from dq_stores.models import (
    ColumnProfile,
    DataContract,
    DatasetContract,
    Histogram,
    ProfilingSnapshot,
    ValueCount,
)
from dq_stores.models.common import utcnow

__all__ = ["profile_table"]

_POLARS_NAMES = {
    "text": "String",
    "int": "Int64",
    "float": "Float64",
    "numeric": "Float64",
    "bool": "Boolean",
    "date": "Date",
    "timestamp": "Datetime(time_unit='us', time_zone=None)",
    "timestamptz": "Datetime(time_unit='us', time_zone='UTC')",
}
_NUMERIC = ("int", "float", "numeric")


def profile_table(
    source: str | Engine,
    table: str,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    top_k: int = 10,
    bins: int = 10,
) -> ProfilingSnapshot:
    """Profile ``table`` in place (see the module docstring); ``metadata["engine"]`` is
    ``sql:<dialect>``.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    started = utcnow()
    if isinstance(contract, RulePlan):
        data_contract, dataset = contract.contract, contract.dataset
    else:
        data_contract, dataset, _ = resolve_dataset(contract, dataset_type)
    header = RulePlan(data_contract, dataset, ()).header()
    engine = open_engine(source)
    try:
        with engine.connect() as conn:
            return _profile(conn, table, dataset, header, started, top_k, bins)
    except sa.exc.DBAPIError as exc:
        raise SqlEngineError(f"profiling {table!r}: {str(exc.orig).splitlines()[0]}") from exc
    finally:
        if not isinstance(source, Engine):
            engine.dispose()


def _value(col: _Col) -> sa.ColumnElement[Any]:
    return col.typed if col.typed is not None else col.raw


def _category(col: _Col, declared: str | None) -> str:
    if col.typed is not None and col.converts:
        return "int"  # a float column declared integer, converted
    return col.category


def _finite(v: sa.ColumnElement[Any], category: str) -> sa.ColumnElement[Any]:
    if category != "float":
        return v
    inf: sa.ColumnElement[Any] = sa.cast(sa.literal("Infinity"), sa.Double())
    ok = sa.and_(v != inf, v != -inf)
    return sa.case((ok, v), else_=sa.null())


def _order(v: sa.ColumnElement[Any], category: str, dialect: _Dialect) -> sa.ColumnElement[Any]:
    if category == "text" and dialect.binary_collation:
        return v.collate(dialect.binary_collation)
    return v


def _profile(
    conn: Connection,
    table_name: str,
    dataset: DatasetContract,
    header: dict[str, Any],
    started: Any,
    top_k: int,
    bins: int,
) -> ProfilingSnapshot:
    dialect = _dialect(conn)
    table = _reflect(conn, table_name)
    cols = _columns(table, dataset, dialect)
    contract_cols = {c.column_id: c for c in dataset.columns}
    names = [c.column_id for c in dataset.columns if c.column_id in cols]
    names += [c.name for c in table.columns if c.name not in contract_cols]

    aggs: list[sa.ColumnElement[Any]] = [sa.func.count().label("__rows")]
    cats: dict[str, str] = {}
    for i, name in enumerate(names):
        col = cols[name]
        cc = contract_cols.get(name)
        cat = _category(col, cc.data_type.value if cc else None)
        cats[name] = cat
        v = _value(col)
        k = f"p{i}_"
        aggs += [sa.func.count(v).label(f"{k}n"), _count_if(v.is_(None), dialect).label(f"{k}z")]
        aggs.append(sa.func.count(sa.distinct(v)).label(f"{k}d"))
        if cat in _NUMERIC:
            f = _finite(v, cat)
            ff: sa.ColumnElement[Any] = sa.cast(f, sa.Double())
            aggs += [
                sa.func.min(f).label(f"{k}lo"),
                sa.func.max(f).label(f"{k}hi"),
                sa.func.count(f).label(f"{k}fn"),
            ]
            aggs += [sa.func.avg(ff).label(f"{k}mean"), sa.func.stddev_samp(ff).label(f"{k}sd")]
        elif cat in ("text", "date", "timestamp", "timestamptz", "bool"):
            if cat == "bool":
                # min / max of booleans: false < true, as polars orders them
                as_int = sa.cast(v, sa.Integer())
                aggs += [sa.func.min(as_int).label(f"{k}lo"), sa.func.max(as_int).label(f"{k}hi")]
            else:
                o = _order(v, cat, dialect)
                aggs += [sa.func.min(o).label(f"{k}lo"), sa.func.max(o).label(f"{k}hi")]
    row = dict(conn.execute(sa.select(*aggs).select_from(table)).mappings().one())
    row_count = int(row["__rows"])

    ranges: dict[str, tuple[float, float]] = {}
    hist_aggs: list[sa.ColumnElement[Any]] = []
    for i, name in enumerate(names):
        k = f"p{i}_"
        if cats[name] == "bool":
            for end in ("lo", "hi"):
                if row.get(f"{k}{end}") is not None:
                    row[f"{k}{end}"] = bool(row[f"{k}{end}"])
        if cats[name] not in _NUMERIC:
            continue
        lo, hi = _float(row.get(f"{k}lo")), _float(row.get(f"{k}hi"))
        if lo is None or hi is None:
            continue
        ranges[name] = (lo, hi)
        cc = contract_cols.get(name)
        if hi > lo and not (cc and cc.is_pii):
            f = sa.cast(_finite(_value(cols[name]), cats[name]), sa.Double())
            width = (hi - lo) / bins
            idx = sa.func.floor((f - sa.literal(lo, sa.Double())) / sa.literal(width, sa.Double()))
            clipped = sa.func.least(sa.func.greatest(idx, 0), bins - 1)
            for b in range(bins):
                hist_aggs.append(_count_if(sa.and_(f.is_not(None), clipped == b), dialect).label(f"{k}h{b}"))
    hist = dict(conn.execute(sa.select(*hist_aggs).select_from(table)).mappings().one()) if hist_aggs else {}

    profiles: dict[str, ColumnProfile] = {}
    stored: list[str] = []
    for i, name in enumerate(names):
        k = f"p{i}_"
        col, cc = cols[name], contract_cols.get(name)
        pii = bool(cc and cc.is_pii)
        if cc is not None and col.typed is None:
            stored.append(name)
        vmin, vmax = to_json_scalar(row.get(f"{k}lo")), to_json_scalar(row.get(f"{k}hi"))
        histogram = None
        if name in ranges and not pii:
            rlo, rhi = ranges[name]
            if rhi > rlo:
                counts = [int(hist[f"{k}h{b}"]) for b in range(bins)]
                edges = [rlo + (rhi - rlo) * j / bins for j in range(bins)] + [rhi]
                histogram = Histogram(edges=edges, counts=counts)
            else:
                histogram = Histogram(edges=[rlo, rhi], counts=[int(row[f"{k}fn"])])
        nulls = int(row[f"{k}z"])
        profiles[name] = ColumnProfile(
            column=name,
            data_type=cc.data_type.value if cc else _POLARS_NAMES.get(col.category, col.category),
            count=int(row[f"{k}n"]),
            null_count=nulls,
            null_ratio=nulls / row_count if row_count else 0.0,
            distinct_count=int(row.get(f"{k}d") or 0),
            min=mask_value(vmin) if pii else vmin,
            max=mask_value(vmax) if pii else vmax,
            mean=_float(row.get(f"{k}mean")),
            stddev=_float(row.get(f"{k}sd")),
            top_values=_top(conn, table, cols[name], cats[name], dialect, top_k, pii),
            top_values_masked=pii,
            histogram=histogram,
        )
    snapshot = finish_profile(
        header, dataset, row_count, profiles, ranges, started, engine=f"sql:{dialect.name}"
    )
    if stored:
        snapshot.metadata["stored_types"] = stored
    return snapshot


def _top(
    conn: Connection, table: sa.TableClause, col: _Col, cat: str, dialect: _Dialect, k: int, pii: bool
) -> list[ValueCount]:
    if k <= 0:
        return []
    v = _value(col).label("v")
    n = sa.func.count().label("n")
    query = (
        sa.select(v, n)
        .select_from(table)
        .where(_value(col).is_not(None))
        .group_by(_value(col))
        .order_by(n.desc(), _order(_value(col), cat, dialect))
        .limit(k)
    )
    out: list[ValueCount] = []
    for value, count in conn.execute(query):
        j = to_json_scalar(value)
        out.append(ValueCount(value=mask_value(j) if pii else j, count=int(count)))
    return out


def _float(v: Any) -> float | None:
    if v is None:
        return None
    out = float(v)
    return out if math.isfinite(out) else None
