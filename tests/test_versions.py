"""Unit tests of the version sort key: numeric-aware, pre-releases below their release (semver
precedence), short versions tie with padded ones, non-versions sort below every version."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_stores.versions import version_key


def _sorted(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_key)


def test_numeric_components_compare_as_numbers() -> None:
    assert _sorted(["1.10.0", "1.9.0", "1.2.0", "10.0.0", "2.0.0"]) == [
        "1.2.0",
        "1.9.0",
        "1.10.0",
        "2.0.0",
        "10.0.0",
    ]


def test_semver_precedence_example() -> None:
    # The example of semver.org, rule 11, in order.
    expected = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    shuffled = expected[:]
    random.Random(7).shuffle(shuffled)
    assert _sorted(shuffled) == expected


def test_prerelease_of_a_higher_version_beats_a_lower_release() -> None:
    assert version_key("2.0.0-rc.1") > version_key("1.10.0")
    assert version_key("2.0.0-rc.1") < version_key("2.0.0")
    assert version_key("2.0.0-rc.10") > version_key("2.0.0-rc.2")
    assert version_key("1.0.0-99") < version_key("1.0.0-a")


@pytest.mark.parametrize("variants", [["1.2", "1.2.0", "1.2.0.0", "v1.2.0", "v1.2"], ["2", "2.0.0"]])
def test_equivalent_spellings_tie(variants: list[str]) -> None:
    assert len({version_key(v) for v in variants}) == 1


def test_non_versions_sort_below_versions_and_lexically_among_themselves() -> None:
    assert _sorted(["0.0.1", "main", "alpha", "0.0.0"]) == ["alpha", "main", "0.0.0", "0.0.1"]
    # Five components or an 11-digit number are not versions here.
    assert version_key("1.2.3.4.5") < version_key("0.0.0")
    assert version_key("12345678901.0.0") < version_key("0.0.0")


def test_keys_are_ascii_and_sort_bytewise() -> None:
    # Backends sort the key as bytes (COLLATE "C", file names): ASCII keys sort the same everywhere.
    keys = [version_key(v) for v in ["0.1", "1.0.0-rc.1", "1.0.0", "main", "v2"]]
    assert all(k.isascii() for k in keys)
    assert sorted(keys) == sorted(keys, key=str.encode)


versions = st.lists(st.integers(min_value=0, max_value=9_999_999_999), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_key_order_matches_numeric_order(a: list[int], b: list[int]) -> None:
    def padded(parts: list[int]) -> list[int]:
        return parts + [0] * (4 - len(parts))

    key_a, key_b = version_key(".".join(map(str, a))), version_key(".".join(map(str, b)))
    assert (key_a < key_b) == (padded(a) < padded(b))
    assert (key_a == key_b) == (padded(a) == padded(b))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.integers(min_value=0, max_value=10**6).map(str)
        | st.from_regex(r"[a-z][a-z0-9-]{0,5}", fullmatch=True),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.integers(min_value=0, max_value=10**6).map(str)
        | st.from_regex(r"[a-z][a-z0-9-]{0,5}", fullmatch=True),
        min_size=1,
        max_size=4,
    ),
)
def test_prerelease_order_matches_semver(a: list[str], b: list[str]) -> None:
    def precedence(idents: list[str]) -> list[tuple[int, int, str]]:
        return [(0, int(i), "") if i.isdigit() else (1, 0, i) for i in idents]

    key_a, key_b = version_key("1.0.0-" + ".".join(a)), version_key("1.0.0-" + ".".join(b))
    assert (key_a < key_b) == (precedence(a) < precedence(b))
    assert key_a < version_key("1.0.0")
