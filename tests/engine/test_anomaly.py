"""The anomaly detector (``dq_dagster.engine.anomaly``): band, trend, weekly seasonality, minimum
history, direction, robustness, and what a dataset contract's ``anomaly_detection`` block follows.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from dq_dagster.engine.anomaly import (
    DetectorSettings,
    Monitor,
    anomaly_checks,
    band,
    judge,
    monitors,
    split_key,
)
from dq_dagster.examples.generator import billing_contract
from dq_stores.metrics import MetricPoint
from dq_stores.models import AnomalyDetection, DataContract

MONDAY = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def daily(values: list[float], start: datetime = MONDAY) -> list[tuple[datetime, float]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def noisy(n: int, level: float = 1000.0, sd: float = 10.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, sd) for _ in range(n)]


def test_too_little_history_is_never_an_alarm() -> None:
    history = daily([100.0] * 6)
    expected = band(history, MONDAY + timedelta(days=6), DetectorSettings(min_history=7))
    assert not expected.evaluated and expected.low is None and expected.history_size == 6
    assert not judge(1e9, expected)
    assert band(daily([100.0] * 7), MONDAY + timedelta(days=7), DetectorSettings(min_history=7)).evaluated


def test_noise_passes_and_a_spike_fails_in_both_directions() -> None:
    history = daily(noisy(40))
    at = MONDAY + timedelta(days=40)
    expected = band(history, at)
    assert expected.low is not None and expected.high is not None
    assert 940 < expected.low < 1000 < expected.high < 1060  # about 4 robust sd of 10 either side
    assert not judge(1010.0, expected)
    assert judge(1100.0, expected) and judge(900.0, expected)


def test_direction_checks_one_side_only() -> None:
    history, at = daily(noisy(40)), MONDAY + timedelta(days=40)
    up = band(history, at, DetectorSettings(direction="up"))
    down = band(history, at, DetectorSettings(direction="down"))
    assert up.low is None and down.high is None
    assert judge(1100.0, up) and not judge(900.0, up)
    assert judge(900.0, down) and not judge(1100.0, down)


def test_sensitivity_widens_the_band() -> None:
    history, at = daily(noisy(40)), MONDAY + timedelta(days=40)
    narrow = band(history, at, DetectorSettings(sensitivity=2.0))
    wide = band(history, at, DetectorSettings(sensitivity=6.0))
    assert narrow.high is not None and wide.high is not None and narrow.high < wide.high
    assert judge(1035.0, narrow) and not judge(1035.0, wide)


def test_a_trend_moves_the_band_with_it() -> None:
    # +10 rows a day with noise of 3: the next value on the trend is normal; a plain median of
    # the history (~1195) would call it an anomaly, and the old level is one.
    values = [1000.0 + 10 * i + v for i, v in enumerate(noisy(40, level=0.0, sd=3.0))]
    expected = band(daily(values), MONDAY + timedelta(days=40))
    assert expected.center is not None and abs(expected.center - 1400.0) < 10
    assert not judge(1400.0, expected)
    assert judge(1195.0, expected)


def test_outliers_in_the_history_do_not_widen_the_band() -> None:
    values = noisy(40)
    values[10] = values[25] = 50_000.0  # two past spikes
    expected = band(daily(values), MONDAY + timedelta(days=40))
    assert expected.high is not None and expected.high < 1070
    assert judge(1100.0, expected)


def weekly_values(weeks: int) -> list[float]:
    """Weekdays ~1000, weekends ~600, noise 10."""
    noise = noisy(7 * weeks, level=0.0)
    return [
        (600.0 if (MONDAY + timedelta(days=i)).weekday() >= 5 else 1000.0) + noise[i]
        for i in range(7 * weeks)
    ]


def test_weekly_seasonality_once_three_weeks_allow_it() -> None:
    history = daily(weekly_values(6))  # ends on a Sunday; next: Monday
    saturday = MONDAY + timedelta(days=47)
    weekend = band(history[:47], saturday)
    assert weekend.seasonal
    assert not judge(600.0, weekend)  # a normal Saturday
    assert judge(1000.0, weekend)  # a weekday's volume on a Saturday
    monday = band(history, MONDAY + timedelta(days=42))
    assert monday.seasonal and judge(600.0, monday) and not judge(1000.0, monday)
    # Two weeks: not enough same-weekday points; without seasonality the weekend is the minority.
    short = band(history[:12], MONDAY + timedelta(days=12))
    assert not short.seasonal
    # seasonality "none" never uses it; "auto" does not on a series without a weekly pattern.
    assert not band(history, MONDAY + timedelta(days=42), DetectorSettings(seasonality="none")).seasonal
    # (a weekly profile fitted to pure noise narrows it by chance on ~2 % of seeds, measured)
    chosen = sum(band(daily(noisy(42, seed=s)), MONDAY + timedelta(days=42)).seasonal for s in range(100))
    assert chosen <= 5


def test_ratios_are_clamped_and_a_constant_history_flags_any_change() -> None:
    points = [MetricPoint(MONDAY + timedelta(days=i), f"j{i}", {"email.null_ratio": 0.0}) for i in range(10)]
    at = MONDAY + timedelta(days=10)
    watch = [Monitor("email.null_ratio", DetectorSettings())]
    [same] = anomaly_checks(watch, {"email.null_ratio": 0.0}, points, at)
    assert same.evaluated and not same.anomalous and same.expected_low == 0.0
    [burst] = anomaly_checks(watch, {"email.null_ratio": 0.2}, points, at)
    assert burst.anomalous and burst.observed == 0.2 and burst.history_size == 10
    assert (burst.metric, burst.column, burst.rule_id, burst.key) == (
        "null_ratio",
        "email",
        None,
        "email.null_ratio",
    )
    [missing] = anomaly_checks(watch, {}, points, at)
    assert not missing.evaluated and not missing.anomalous


def test_split_key() -> None:
    assert split_key("row_count") == ("row_count", None, None)
    assert split_key("a.b.mean") == ("mean", "a.b", None)
    assert split_key("rule:amount.min_value.failure_rate") == ("failure_rate", None, "amount.min_value")


def contract_with(block: dict[str, object]) -> DataContract:
    doc = json.loads(billing_contract().model_dump_json(exclude_unset=True))
    doc["datasets"][0]["anomaly_detection"] = block
    return DataContract.model_validate(doc)


def test_the_default_block_follows_row_count_null_ratios_and_numeric_means() -> None:
    dataset = contract_with({}).datasets[0]
    keys = [m.key for m in monitors(dataset)]
    assert keys[0] == "row_count"
    assert "customer_email.null_ratio" in keys and "gross_amount.mean" in keys
    assert "customer_email.mean" not in keys  # a string column has no mean
    assert {m.settings for m in monitors(dataset)} == {DetectorSettings()}
    assert AnomalyDetection().sensitivity == DetectorSettings().sensitivity == 4.0
    # No block, or a disabled one: nothing followed.
    assert monitors(billing_contract().datasets[0]) == []
    assert monitors(contract_with({"enabled": False}).datasets[0]) == []


def test_named_metrics_and_per_column_overrides() -> None:
    dataset = contract_with(
        {
            "metrics": ["row_count", "gross_amount.max", "rule:r1.failure_rate"],
            "sensitivity": 3,
            "columns": {
                "customer_email": {"metrics": ["null_ratio", "distinct_ratio"], "direction": "up"},
                "gross_amount": {"enabled": False},
            },
        }
    ).datasets[0]
    found = {m.key: m.settings for m in monitors(dataset)}
    assert list(found) == [
        "row_count",
        "rule:r1.failure_rate",
        "customer_email.null_ratio",
        "customer_email.distinct_ratio",
    ]
    assert found["row_count"] == DetectorSettings(sensitivity=3)
    assert found["customer_email.null_ratio"] == DetectorSettings(sensitivity=3, direction="up")


@pytest.mark.parametrize(
    "block",
    [
        {"metrics": ["amount.median"]},
        {"metrics": ["rule:.failure_rate"]},
        {"sensitivity": 0},
        {"min_history": 2},
        {"min_history": 60, "max_history": 30},
        {"direction": "sideways"},
        {"seasonality": "monthly"},
    ],
)
def test_a_bad_block_is_refused(block: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        contract_with(block)
