"""Declared contract types as polars expressions: casting, parsing and typed literals.

``typed_column`` says how a column of a given polars dtype becomes its declared type: unchanged
(the dtype already is that type), or through a cast / parse expression that yields null where a
value cannot be converted. Validation counts those nulls as type failures, cleansing keeps the
converted column, profiling computes statistics on it. No rule or report logic here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from dq_stores.models import ColumnContract, DataType

__all__ = ["TypedColumn", "is_numeric", "python_value", "target_dtype", "typed_column"]

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_BOOL_MAP = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}

_ISO_DATETIME_TZ = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_ISO_DATETIME = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)
_ISO_DATE = "%Y-%m-%d"


@dataclass(frozen=True)
class TypedColumn:
    """How a column reaches its declared type.

    ``expr`` is None when the column already has the type (use it as it is); otherwise it yields
    the converted values and null where a value cannot be converted (``may_fail``).
    """

    dtype: pl.DataType
    expr: pl.Expr | None = None
    may_fail: bool = False


def target_dtype(declared: DataType) -> pl.DataType | None:
    """The polars dtype a declared type converts to; None for types kept as they are (json)."""
    return {
        DataType.STRING: pl.String(),
        DataType.INTEGER: pl.Int64(),
        DataType.DECIMAL: pl.Float64(),
        DataType.FLOAT: pl.Float64(),
        DataType.BOOLEAN: pl.Boolean(),
        DataType.DATE: pl.Date(),
        DataType.DATETIME: pl.Datetime("us"),
        DataType.TIMESTAMP: pl.Datetime("us"),
    }.get(declared)


def is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and not isinstance(dtype, pl.Boolean)


def _custom_format(column: ColumnContract) -> str | None:
    # "ISO-8601" and friends name the default; a strftime pattern (with %) replaces it.
    fmt = column.format
    return fmt if fmt and "%" in fmt else None


def _parse_date(s: pl.Expr, column: ColumnContract) -> pl.Expr:
    return s.str.to_date(_custom_format(column) or _ISO_DATE, strict=False)


def _parse_datetime(s: pl.Expr, column: ColumnContract) -> pl.Expr:
    fmt = _custom_format(column)
    if fmt is not None:
        return s.str.to_datetime(fmt, strict=False, time_unit="us")
    # Offsets are converted to UTC and dropped, so every parsed value is naive UTC.
    parsed = [
        s.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC").dt.replace_time_zone(None)
        for f in _ISO_DATETIME_TZ
    ]
    parsed += [s.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_DATETIME]
    parsed.append(s.str.to_date(_ISO_DATE, strict=False).cast(pl.Datetime("us")))
    return pl.coalesce(parsed)


def typed_column(expr: pl.Expr, source: pl.DataType, column: ColumnContract) -> TypedColumn:
    """How values of polars type ``source`` (read by ``expr``) become ``column.data_type``."""
    declared = column.data_type
    target = target_dtype(declared)
    if target is None or source == target:
        return TypedColumn(source)
    if isinstance(source, pl.Null):
        return TypedColumn(target, expr.cast(target))
    is_str = isinstance(source, pl.String | pl.Categorical | pl.Enum)
    s = expr.cast(pl.String).str.strip_chars() if is_str else expr

    if declared == DataType.STRING:
        if isinstance(source, pl.List | pl.Array | pl.Struct | pl.Object | pl.Binary):
            return TypedColumn(target, pl.lit(None, dtype=target), may_fail=True)
        return TypedColumn(target, expr.cast(pl.String))
    if declared in (DataType.DECIMAL, DataType.FLOAT):
        if is_numeric(source):
            return TypedColumn(source)  # any number is a decimal; comparisons work on it as is
        if is_str:
            return TypedColumn(target, s.cast(pl.Float64, strict=False), may_fail=True)
    elif declared == DataType.INTEGER:
        if source.is_integer():
            return TypedColumn(source)
        if source.is_float() or isinstance(source, pl.Decimal):
            f = expr.cast(pl.Float64)
            whole = f.is_finite() & (f == f.floor())
            return TypedColumn(target, pl.when(whole).then(f.cast(pl.Int64, strict=False)), may_fail=True)
        if is_str:
            return TypedColumn(target, s.cast(pl.Int64, strict=False), may_fail=True)
        if isinstance(source, pl.Boolean):
            return TypedColumn(target, expr.cast(pl.Int64))
    elif declared == DataType.BOOLEAN:
        if source.is_integer():
            return TypedColumn(target, pl.when(expr.is_in([0, 1])).then(expr == 1), may_fail=True)
        if is_str:
            mapped = s.str.to_lowercase().replace_strict(_BOOL_MAP, default=None, return_dtype=pl.Boolean)
            return TypedColumn(target, mapped, may_fail=True)
    elif declared == DataType.DATE:
        if isinstance(source, pl.Datetime):
            return TypedColumn(target, expr.dt.date())
        if is_str:
            return TypedColumn(target, _parse_date(s, column), may_fail=True)
    elif declared in (DataType.DATETIME, DataType.TIMESTAMP):
        if isinstance(source, pl.Datetime):
            return TypedColumn(source)  # keep its unit and time zone
        if isinstance(source, pl.Date):
            return TypedColumn(target, expr.cast(target))
        if is_str:
            return TypedColumn(target, _parse_datetime(s, column), may_fail=True)
    # A dtype that cannot hold the declared type at all (a date declared integer, ...).
    return TypedColumn(target, pl.lit(None, dtype=target), may_fail=True)


def python_value(value: Any, declared: DataType) -> Any:
    """A contract value (min/max, allowed value) as the Python value of the declared type.

    Raises ``ValueError`` (or ``TypeError``) when it cannot be one.
    """
    if declared in (DataType.INTEGER, DataType.DECIMAL, DataType.FLOAT):
        if isinstance(value, bool):
            raise TypeError("a boolean is not a number")
        if isinstance(value, int | float):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    if declared == DataType.BOOLEAN:
        if isinstance(value, bool):
            return value
        key = str(value).strip().lower()
        if key not in _BOOL_MAP:
            raise ValueError(f"not a boolean: {value!r}")
        return _BOOL_MAP[key]
    if declared == DataType.DATE:
        return date.fromisoformat(str(value))
    if declared in (DataType.DATETIME, DataType.TIMESTAMP):
        dt = datetime.fromisoformat(str(value))
        return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt
    return str(value)


def literal(value: Any, dtype: pl.DataType) -> pl.Expr:
    """``value`` (from ``python_value``) as a literal comparable with a column of ``dtype``."""
    if isinstance(dtype, pl.Datetime) and isinstance(value, datetime):
        lit = pl.lit(value, dtype=pl.Datetime(dtype.time_unit or "us"))
        if dtype.time_zone:
            lit = lit.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)
        return lit
    if isinstance(dtype, pl.Date) and isinstance(value, datetime):
        return pl.lit(value.date())
    if isinstance(dtype, pl.Datetime) and isinstance(value, date):
        return literal(datetime(value.year, value.month, value.day), dtype)
    return pl.lit(value)
