"""Row 17: the anomaly detector (``dq_dagster.engine.anomaly``) on synthetic metric series at its
default settings: precision (17a) and recall (17b) on series with injected anomalies, and false
alarms per 100 runs of series with none (17c). Quality, not speed: each repetition is one seed
(``reps`` seeds, deterministic), the figure is the median over seeds with min and max.

The series are daily runs of three kinds of metric, each with a trend (none, or up / down) and,
for half of them, a weekly profile:

* ``row_count``: level 5k-50k rows, trend up to +-0.6 %/day, weekends at 60 % when weekly,
  multiplicative noise of 2 %; anomalies: spikes of +-12-40 % (6-20 noise sd) and level shifts
  of +-20-50 %.
* ``<column>.null_ratio``: base 0.5-5 %, noise 10 % of the base, weekends +30 % when weekly;
  anomalies: null bursts (1-3 runs at +10-30 points) and drops to 0.
* ``<column>.mean``: level 100, noise sd 2, trend up to +-0.1/day, weekly profile of +-5;
  anomalies: spikes and level shifts of 6-12 noise sd.

Each run is judged against the history of the runs before it (one-step-ahead, as in production;
anomalies stay in the history, as they would). Scored runs start at run 29 (four weeks of
history: weekly seasonality needs three weeks of same-weekday points before it applies; earlier
runs are judged, not scored: ``details`` gives the false-alarm rate including them). Anomalies
are injected from run 35 on. After a level shift the band needs about half its window
(``max_history`` / 2 = 28 runs) to move to the new level: those runs are neither required nor
counted as false alarms ("settling"); the shift's first run is the anomaly to find.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bench.harness import Config, Result, Stats, check
from bench.services import Services
from dq_dagster.engine.anomaly import DetectorSettings, band, judge
from dq_stores.models import AnomalyDetection

Label = Literal["normal", "anomaly", "settling"]
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday
SCORED_FROM = 28
INJECT_FROM = 35
SETTLE = 28


@dataclass
class Series:
    kind: str
    values: list[float]
    labels: list[Label]


def _settings() -> DetectorSettings:
    default = AnomalyDetection()  # the contract's defaults, nothing tuned here
    return DetectorSettings(
        sensitivity=default.sensitivity,
        direction=default.direction,
        min_history=default.min_history,
        seasonality=default.seasonality,
    )


def _bounds(kind: str) -> tuple[float | None, float | None]:
    return {"row_count": (0.0, None), "null_ratio": (0.0, 1.0)}.get(kind, (None, None))


def _normal(rng: random.Random, kind: str, length: int, weekly: bool) -> tuple[list[float], float]:
    """(values, noise sd at the level) of one clean series."""
    trend = rng.choice([0.0, 1.0, -1.0]) * rng.uniform(0.3, 1.0)
    values: list[float] = []
    if kind == "row_count":
        level = rng.uniform(5_000, 50_000)
        for t in range(length):
            day = (START + timedelta(days=t)).weekday()
            season = 0.6 if weekly and day >= 5 else 1.0
            values.append(level * (1 + 0.006 * trend) ** t * season * (1 + rng.gauss(0, 0.02)))
        return values, 0.02
    if kind == "null_ratio":
        base = rng.uniform(0.005, 0.05)
        for t in range(length):
            day = (START + timedelta(days=t)).weekday()
            season = 1.3 if weekly and day >= 5 else 1.0
            values.append(max(0.0, base * season * (1 + rng.gauss(0, 0.1))))
        return values, 0.1 * base
    profile = [rng.uniform(-5, 5) for _ in range(7)] if weekly else [0.0] * 7
    for t in range(length):
        day = (START + timedelta(days=t)).weekday()
        values.append(100 + 0.1 * trend * t + profile[day] + rng.gauss(0, 2))
    return values, 2.0


def _inject(rng: random.Random, series: Series, sd: float) -> None:
    values, labels, n = series.values, series.labels, len(series.values)
    spots = list(range(INJECT_FROM, n, 12))
    rng.shuffle(spots)
    spots = sorted(spots[: max(1, len(spots) // 2)])
    shift_at = spots[-1] if series.kind != "null_ratio" and rng.random() < 0.6 else None
    for at in spots:
        if at == shift_at:
            if series.kind == "row_count":
                factor = 1 + rng.choice([1, -1]) * rng.uniform(0.2, 0.5)
                values[at:] = [v * factor for v in values[at:]]
            else:
                delta = rng.choice([1, -1]) * rng.uniform(6, 12) * sd
                values[at:] = [v + delta for v in values[at:]]
            labels[at] = "anomaly"
            for i in range(at + 1, min(n, at + 1 + SETTLE)):
                labels[i] = "settling"
            break
        if series.kind == "row_count":
            values[at] *= 1 + rng.choice([1, -1]) * rng.uniform(0.12, 0.4)
            labels[at] = "anomaly"
        elif series.kind == "null_ratio":
            if rng.random() < 0.25:
                values[at] = 0.0
                labels[at] = "anomaly"
            else:
                jump = rng.uniform(0.1, 0.3)
                for i in range(at, min(n, at + rng.randint(1, 3))):
                    values[i] += jump
                    labels[i] = "anomaly"
        else:
            values[at] += rng.choice([1, -1]) * rng.uniform(6, 12) * sd
            labels[at] = "anomaly"


def make_series(seed: int, count: int, length: int, anomalous: bool) -> list[Series]:
    rng = random.Random(seed)
    made: list[Series] = []
    for i in range(count):
        kind = ("row_count", "null_ratio", "mean")[i % 3]
        values, sd = _normal(rng, kind, length, weekly=(i // 3) % 2 == 0)
        series = Series(kind, values, ["normal"] * length)
        if anomalous:
            _inject(rng, series, sd)
        made.append(series)
    return made


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    normal_runs: int = 0
    false_alarms: int = 0
    early_runs: int = 0
    early_alarms: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def false_alarms_per_100(self) -> float:
        return 100.0 * self.false_alarms / self.normal_runs if self.normal_runs else 0.0


def score(series: list[Series], settings: DetectorSettings, window: int) -> Score:
    """One-step-ahead judgement of every run from ``min_history`` on."""
    result = Score()
    for s in series:
        times = [START + timedelta(days=t) for t in range(len(s.values))]
        for t in range(settings.min_history, len(s.values)):
            lo = max(0, t - window)
            history = list(zip(times[lo:t], s.values[lo:t], strict=True))
            flagged = judge(s.values[t], band(history, times[t], settings, bounds=_bounds(s.kind)))
            label = s.labels[t]
            if t < SCORED_FROM:
                result.early_runs += 1
                result.early_alarms += flagged
                continue
            if label == "anomaly":
                result.tp += flagged
                result.fn += not flagged
            elif label == "normal":
                result.fp += flagged
                result.normal_runs += 1
                result.false_alarms += flagged
    return result


def run_all(config: Config, services: Services, only: set[str] | None) -> Iterator[Result]:
    del services, only
    settings = _settings()
    window = AnomalyDetection().max_history
    count, length = (6, 84) if config.smoke else (30, 150)
    seeds = range(1, max(config.reps, 1) + 1)
    labelled = [score(make_series(seed, count, length, True), settings, window) for seed in seeds]
    clean = [score(make_series(1000 + seed, count, length, False), settings, window) for seed in seeds]
    check(all(s.tp + s.fn > 0 for s in labelled), "every seed has injected anomalies")
    check(all(s.normal_runs > 0 for s in clean), "every seed has normal runs")
    details = {
        "series_per_seed": count,
        "runs_per_series": length,
        "seeds": list(seeds),
        "sensitivity": settings.sensitivity,
        "min_history": settings.min_history,
        "max_history": window,
        "anomalies_per_seed": [s.tp + s.fn for s in labelled],
        "false_alarms_per_100_with_early_runs": [
            round(100.0 * (s.false_alarms + s.early_alarms) / (s.normal_runs + s.early_runs), 3)
            for s in clean
        ],
    }
    name = f"anomaly detector, {count} synthetic series x {length} runs x {len(seeds)} seeds"
    for rid, label, values, target, kind in (
        ("17a", "precision", [s.precision for s in labelled], 0.9, "throughput"),
        ("17b", "recall", [s.recall for s in labelled], 0.9, "throughput"),
        ("17c", "false alarms per 100 normal runs", [s.false_alarms_per_100 for s in clean], 1.0, "latency"),
    ):
        check(all(math.isfinite(v) for v in values), f"{label} is finite")
        result = Result(
            rid,
            f"{name}: {label}",
            kind,  # type: ignore[arg-type]
            (">= 0.9" if kind == "throughput" else "<= 1"),
            1.0,
            baseline_name=f"the issue's target ({target:g}); ratio = ours / target",
            details=details,
        )
        result.ours = Stats.of(values, "per 100" if rid == "17c" else "")
        result.baseline = Stats.of([target], "")
        result.ratio = result.ours.median / target
        yield result.decide()
