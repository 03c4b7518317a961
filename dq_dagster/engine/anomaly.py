"""Anomaly detection on a metric's own history: pure functions over ``(time, value)`` points.

The band for the next value, learned from the previous runs (oldest first):

1. **Trend**: the Theil-Sen slope (median of pairwise slopes, per day), robust to outliers in
   the history; values are levelled to the time being judged (``y - slope * days_before``).
2. **Weekly seasonality**: when every weekday present has at least 3 points (so >= 3 weeks of
   same-weekday runs) and the history spans 3 weeks, the median of each weekday's levelled
   values gives a weekly profile. ``auto`` keeps it only when it narrows the mean absolute
   residual by a tenth (measured leave-one-out, so a profile fitted to noise does not win by
   overfitting; the mean, not the MAD, which would ignore two weekend days as outliers).
3. **Spread**: the median absolute deviation of the residuals, as a robust standard deviation
   (x 1.4826; the mean absolute deviation x 1.2533 when more than half the residuals are equal),
   widened by sqrt(1 + 1/n) for the error of the centre itself.
4. **Band**: centre +- ``sensitivity`` spreads; ``direction`` says which side is checked
   (the other bound is None). Ratios are clamped to [0, 1] and counts to >= 0.

Fewer than ``min_history`` points: not evaluated and never an alarm. No Dagster and no store
access here (``dq_stores.metrics`` reads the history; the Component calls ``anomaly_checks``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dq_stores.metrics import MetricPoint
from dq_stores.models import (
    DEFAULT_COLUMN_METRICS,
    AnomalyCheck,
    AnomalyDetection,
    AnomalyDirection,
    DatasetContract,
    DataType,
)

__all__ = [
    "METHOD",
    "Band",
    "DetectorSettings",
    "Monitor",
    "anomaly_checks",
    "band",
    "judge",
    "monitors",
    "split_key",
]

METHOD = "theil_sen_mad"
"""``AnomalyCheck.method`` of this detector: Theil-Sen trend, weekly profile, MAD spread."""

_MAD_TO_SD = 1.4826
_MEAN_AD_TO_SD = 1.2533
_DAY = 86_400.0
_SEASON_MIN_POINTS = 3
_SEASON_MIN_DAYS = 21.0
_SEASON_GAIN = 0.9
_NUMERIC = {DataType.INTEGER, DataType.DECIMAL, DataType.FLOAT}

Seasonality = Literal["auto", "weekly", "none"]
Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class DetectorSettings:
    """How one metric is judged (the defaults are ``AnomalyDetection``'s)."""

    sensitivity: float = 4.0
    direction: Direction = "both"
    min_history: int = 7
    seasonality: Seasonality = "auto"


@dataclass(frozen=True)
class Band:
    """The expected range of the next value; ``low`` / ``high`` None when not evaluated."""

    low: float | None
    high: float | None
    center: float | None
    spread: float | None
    history_size: int
    seasonal: bool = False

    @property
    def evaluated(self) -> bool:
        return self.center is not None


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _theil_sen(days: Sequence[float], values: Sequence[float]) -> float:
    slopes = [
        (values[j] - values[i]) / (days[j] - days[i])
        for i in range(len(days))
        for j in range(i + 1, len(days))
        if days[j] != days[i]
    ]
    return _median(slopes) if slopes else 0.0


def _spread(residuals: Sequence[float]) -> float:
    center = _median(residuals)
    deviations = [abs(r - center) for r in residuals]
    mad = _median(deviations)
    if mad > 0:
        return _MAD_TO_SD * mad
    # More than half the residuals are equal (e.g. a null ratio that is mostly 0): the MAD says
    # nothing about the others, the mean absolute deviation does.
    return _MEAN_AD_TO_SD * sum(deviations) / len(deviations)


def _mean_abs(residuals: Sequence[float]) -> float:
    # Not the MAD: weekends are a minority of the points, which the MAD ignores as outliers.
    center = _median(residuals)
    return sum(abs(r - center) for r in residuals) / len(residuals)


def _weekly(
    levelled: Sequence[float], weekdays: Sequence[int], target: int
) -> tuple[float, list[float]] | None:
    """(the target weekday's offset, leave-one-out residuals) or None when the history is too thin."""
    groups: dict[int, list[float]] = {}
    for value, day in zip(levelled, weekdays, strict=True):
        groups.setdefault(day, []).append(value)
    if len(groups.get(target, [])) < _SEASON_MIN_POINTS:
        return None
    if any(len(g) < _SEASON_MIN_POINTS for g in groups.values()) or len(groups) < 2:
        return None
    residuals = []
    for values in groups.values():
        for i, value in enumerate(values):
            residuals.append(value - _median(values[:i] + values[i + 1 :]))
    return _median(groups[target]), residuals


def band(
    history: Sequence[tuple[datetime, float]],
    at: datetime,
    settings: DetectorSettings = DetectorSettings(),
    *,
    bounds: tuple[float | None, float | None] = (None, None),
) -> Band:
    """The band the value at ``at`` is expected in, learned from ``history`` (any order)."""
    points = sorted((t, v) for t, v in history if math.isfinite(v))
    n = len(points)
    if n < max(settings.min_history, 3):
        return Band(None, None, None, None, n)
    days = [(t - at).total_seconds() / _DAY for t, _ in points]
    values = [v for _, v in points]
    slope = _theil_sen(days, values)
    levelled = [v - slope * d for v, d in zip(values, days, strict=True)]
    level = _median(levelled)
    plain = [v - level for v in levelled]
    center, residuals, seasonal = level, plain, False
    if settings.seasonality != "none" and -days[0] >= _SEASON_MIN_DAYS:
        weekly = _weekly(levelled, [t.weekday() for t, _ in points], at.weekday())
        if weekly is not None:
            offset, loo = weekly
            if settings.seasonality == "weekly" or _mean_abs(loo) < _SEASON_GAIN * _mean_abs(plain):
                center, residuals, seasonal = offset, loo, True
    spread = _spread(residuals) * math.sqrt(1.0 + 1.0 / n)
    # A perfectly constant history has no spread: keep a hair of width so float noise is no alarm.
    spread = max(spread, 1e-9 * max(1.0, abs(center)))
    low: float | None = center - settings.sensitivity * spread
    high: float | None = center + settings.sensitivity * spread
    floor, ceiling = bounds
    if floor is not None and low is not None:
        low = max(low, floor)
    if ceiling is not None and high is not None:
        high = min(high, ceiling)
    if settings.direction == "up":
        low = None
    elif settings.direction == "down":
        high = None
    return Band(low, high, center, spread, n, seasonal)


def judge(observed: float | None, expected: Band) -> bool:
    """Whether ``observed`` is an anomaly: outside a checked bound of an evaluated band."""
    if observed is None or not expected.evaluated or not math.isfinite(observed):
        return False
    return (expected.low is not None and observed < expected.low) or (
        expected.high is not None and observed > expected.high
    )


# -- what a dataset contract monitors -----------------------------------------------------------


def split_key(key: str) -> tuple[str, str | None, str | None]:
    """(metric, column, rule_id) of a series key, e.g. ``amount.null_ratio`` -> (null_ratio, amount, None)."""
    if key.startswith("rule:"):
        rule_id, _, metric = key[len("rule:") :].rpartition(".")
        return metric, None, rule_id
    column, _, metric = key.rpartition(".")
    return (metric, column, None) if column else (key, None, None)


def _bounds(metric: str) -> tuple[float | None, float | None]:
    if metric.endswith(("_ratio", "_rate")):
        return 0.0, 1.0
    if metric in {"row_count", "stddev"}:
        return 0.0, None
    return None, None


@dataclass(frozen=True)
class Monitor:
    """One followed series and how it is judged."""

    key: str
    settings: DetectorSettings

    @property
    def is_rule(self) -> bool:
        return self.key.startswith("rule:")


def monitors(dataset: DatasetContract) -> list[Monitor]:
    """The series the dataset contract's ``anomaly_detection`` block follows, in a stable order
    (empty when the block is absent or disabled). See ``AnomalyDetection`` for the defaults.
    """
    config: AnomalyDetection | None = dataset.anomaly_detection
    if config is None or not config.enabled:
        return []
    base = DetectorSettings(
        sensitivity=config.sensitivity,
        direction=config.direction,
        min_history=config.min_history,
        seasonality=config.seasonality,
    )
    if config.metrics is not None:
        keys = list(config.metrics)
    else:
        keys = ["row_count"]
        for col in dataset.columns:
            kind = "numeric" if col.data_type in _NUMERIC else "other"
            keys += [f"{col.column_id}.{m}" for m in DEFAULT_COLUMN_METRICS[kind]]
    for column, override in config.columns.items():
        keys = [k for k in keys if split_key(k)[1] != column]
        if override.enabled:
            metrics: Sequence[str] | None = override.metrics
            if metrics is None:
                found = next((c for c in dataset.columns if c.column_id == column), None)
                kind = "numeric" if found is not None and found.data_type in _NUMERIC else "other"
                metrics = DEFAULT_COLUMN_METRICS[kind]
            keys += [f"{column}.{m}" for m in metrics]
    chosen: list[Monitor] = []
    for key in dict.fromkeys(keys):
        own = config.columns.get(split_key(key)[1] or "")
        settings = base
        if own is not None:
            settings = DetectorSettings(
                sensitivity=own.sensitivity or base.sensitivity,
                direction=own.direction or base.direction,
                min_history=own.min_history or base.min_history,
                seasonality=own.seasonality or base.seasonality,
            )
        chosen.append(Monitor(key, settings))
    return chosen


def anomaly_checks(
    watched: Sequence[Monitor],
    current: Mapping[str, float],
    history: Sequence[MetricPoint],
    at: datetime,
) -> list[AnomalyCheck]:
    """One ``AnomalyCheck`` per monitor: ``current`` (this run's metrics, by key) against the band
    of ``history`` (the previous runs' points, this run left out).
    """
    checks: list[AnomalyCheck] = []
    for monitor in watched:
        metric, column, rule_id = split_key(monitor.key)
        series = [(p.at, p.metrics[monitor.key]) for p in history if monitor.key in p.metrics]
        expected = band(series, at, monitor.settings, bounds=_bounds(metric))
        observed = current.get(monitor.key)
        checks.append(
            AnomalyCheck(
                metric=metric,
                column=column,
                rule_id=rule_id,
                observed=observed,
                expected_low=expected.low,
                expected_high=expected.high,
                history_size=expected.history_size,
                direction=AnomalyDirection(monitor.settings.direction),
                sensitivity=monitor.settings.sensitivity,
                method=METHOD,
                seasonal=expected.seasonal,
                evaluated=expected.evaluated and observed is not None,
                anomalous=judge(observed, expected),
            )
        )
    return checks
