"""Input frames and output values of the engine: polars / pandas in, JSON scalars out.

Everything the engine reads goes through ``to_lazy`` once (pandas is converted a single time,
via Arrow); every value that leaves it for a report goes through ``to_json_scalar``, so a report
never holds a NaN, a date object or a polars type. No rule logic here.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import polars as pl

from dq_stores.models.common import JsonScalar

__all__ = ["FrameLike", "to_json_scalar", "to_lazy"]

FrameLike: TypeAlias = "pl.DataFrame | pl.LazyFrame | Any"
"""A polars DataFrame or LazyFrame, or a pandas DataFrame (converted once)."""


def to_lazy(data: FrameLike) -> pl.LazyFrame:
    """The input as a polars LazyFrame; a pandas frame is converted once (its index dropped)."""
    if isinstance(data, pl.LazyFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.lazy()
    # Checked by module name so pandas is imported only by callers that already use it.
    if type(data).__module__.split(".", 1)[0] == "pandas" and hasattr(data, "columns"):
        try:
            return pl.from_pandas(data).lazy()
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise TypeError(f"cannot convert the pandas frame to polars: {exc}") from exc
        except Exception as exc:  # pyarrow raises its own ArrowInvalid / ArrowTypeError
            if type(exc).__module__.startswith("pyarrow"):
                raise TypeError(f"cannot convert the pandas frame to polars: {exc}") from exc
            raise
    raise TypeError(f"expected a polars DataFrame/LazyFrame or a pandas DataFrame, got {type(data).__name__}")


def to_json_scalar(value: Any) -> JsonScalar | None:
    """A value from a frame as a JSON scalar: ISO strings for dates, no NaN or infinity."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
