"""Unit tests of canonical JSON: sorted keys, compact, UTF-8, UTC ``Z`` timestamps, no NaN, and
the sha256 content hash."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_stores.canonical import canonical_json, content_hash, format_timestamp, sha256_hex, to_jsonable
from dq_stores.errors import InvalidArtifactError
from dq_stores.inputs import sortable_time
from dq_stores.models import JobRun
from dq_stores.testing import load_fixture, make_run


def test_keys_are_sorted_at_every_level_and_output_is_compact() -> None:
    value = {"b": 1, "a": {"d": [3, {"z": 1, "y": None}], "c": True}, "A": "x"}
    assert canonical_json(value) == b'{"A":"x","a":{"c":true,"d":[3,{"y":null,"z":1}]},"b":1}'


def test_key_order_of_the_input_does_not_matter() -> None:
    document = load_fixture("contracts")
    shuffled = dict(reversed(list(document.items())))
    assert canonical_json(shuffled) == canonical_json(document)


def test_text_is_utf8_not_escaped() -> None:
    assert canonical_json({"k": "é ✓ 𝄞"}) == '{"k":"é ✓ 𝄞"}'.encode()
    # Control characters and quotes are escaped the JSON way.
    assert canonical_json({"k": 'a"\n\x00'}) == b'{"k":"a\\"\\n\\u0000"}'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused(bad: float) -> None:
    with pytest.raises(InvalidArtifactError):
        canonical_json({"x": [1, {"y": bad}]})


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", datetime(2024, 1, 1)])
def test_values_without_a_json_form_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidArtifactError):
        canonical_json({"x": bad})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 5, 1, 12, 0, 0), "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 0, 30, 0, tzinfo=timezone(timedelta(hours=1))), "2024-04-30T23:30:00Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 500, tzinfo=UTC), "2024-05-01T12:00:00.000500Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "2024-05-01T12:00:00.123456Z"),
    ],
)
def test_timestamps_are_utc_with_z(value: datetime, text: str) -> None:
    assert format_timestamp(value) == text


def test_timestamp_forms_never_change() -> None:
    # The fast paths (isoformat) must give exactly what the stored documents and indexes hold:
    # strftime's form (glibc leaves years before 1000 unpadded) and the fixed-width sort form.
    rng = random.Random(11)
    zones = [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    for i in range(20_000):
        year = rng.choice([1, 9, 999, 1000, 1970, 2038, 9998]) if i % 4 == 0 else rng.randint(2, 9998)
        value = datetime(
            year,
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(zones),
        )
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        spec = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        assert format_timestamp(value) == utc.strftime(spec), value
        assert sortable_time(value) == (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond:06d}Z"
        ), value


def test_model_timestamps_use_the_canonical_form() -> None:
    run = make_run("t", "e", submitted_at=datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=-4))))
    assert json.loads(canonical_json(run))["submitted_at"] == "2024-05-01T12:00:00Z"


def test_models_write_their_set_fields() -> None:
    run = JobRun.model_validate(
        {"job_id": "r", "tenant_id": "t", "environment": "e", "job_type": "cleansing"}
    )
    assert to_jsonable(run) == {"job_id": "r", "tenant_id": "t", "environment": "e", "job_type": "cleansing"}
    # A default given explicitly is part of the document.
    explicit = JobRun.model_validate({**to_jsonable(run), "status": "pending"})
    assert json.loads(canonical_json(explicit))["status"] == "pending"
    assert canonical_json(explicit) != canonical_json(run)


def test_content_hash_is_sha256_of_the_canonical_form() -> None:
    document = load_fixture("job_runs")
    assert content_hash(document) == hashlib.sha256(canonical_json(document)).hexdigest()
    assert content_hash(JobRun.model_validate(document)) == content_hash(document)
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_form_is_a_fixed_point(value: Any) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded
    assert json.loads(encoded) == value
