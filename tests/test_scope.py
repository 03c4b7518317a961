"""Unit tests of id and scope validation (``dq_stores.scope``): the one gate every store call
passes before a backend sees a tenant, an environment, an id or a version."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_stores.errors import InvalidArtifactError, ScopeViolationError, StoreError
from dq_stores.scope import MAX_ID_LENGTH, Scope, check_artifact_scope, validate_id
from dq_stores.testing._cases import BAD_IDS


@pytest.mark.parametrize(
    "value",
    ["a", "A", "0", "tenant-a", "TNT-001", "a.b", "a_b", "1.10.0-rc.1", "-x", "_", "x" * MAX_ID_LENGTH],
)
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert validate_id(value, "contract_id") == value


@pytest.mark.parametrize("value", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_invalid_ids_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidArtifactError) as exc_info:
        validate_id(value, "contract_id")
    assert exc_info.value.field == "contract_id"
    assert "contract_id" in str(exc_info.value)
    assert len(str(exc_info.value)) < 200, "an over-long id must not be echoed in full"


def test_errors_are_store_errors_and_value_errors() -> None:
    with pytest.raises(InvalidArtifactError) as exc_info:
        validate_id("a/b", "tenant")
    assert isinstance(exc_info.value, StoreError)
    assert isinstance(exc_info.value, ValueError)
    assert exc_info.value.errors == [("tenant", str(exc_info.value))]


def test_scope() -> None:
    scope = Scope("tenant-a", "prod")
    assert str(scope) == "tenant-a/prod"
    assert scope == Scope("tenant-a", "prod")
    assert scope != Scope("tenant-a", "dev")
    assert scope != Scope("Tenant-a", "prod")
    assert len({scope, Scope("tenant-a", "prod")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        scope.tenant = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tenant", "environment", "field"), [("../x", "prod", "tenant"), ("a", "", "environment")]
)
def test_invalid_scope_is_refused(tenant: str, environment: str, field: str) -> None:
    with pytest.raises(InvalidArtifactError) as exc_info:
        Scope(tenant, environment)
    assert exc_info.value.field == field


def test_check_artifact_scope() -> None:
    scope = Scope("acme", "prod")
    check_artifact_scope(scope, "acme", "prod", "contract c1")
    for tenant, environment in [("other", "prod"), ("acme", "dev"), ("ACME", "prod")]:
        with pytest.raises(ScopeViolationError) as exc_info:
            check_artifact_scope(scope, tenant, environment, "contract c1")
        assert "acme/prod" in str(exc_info.value)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=140) | st.text(alphabet="abc./\\-_\x00", max_size=8))
def test_accepted_ids_are_safe_path_and_key_segments(value: str) -> None:
    try:
        validate_id(value, "id")
    except InvalidArtifactError:
        return
    assert 1 <= len(value) <= MAX_ID_LENGTH
    assert value.isascii()
    assert value.isprintable()
    assert not any(c in value for c in "/\\:*?\"'<>|% \t\n")
    assert not value.startswith(".")
    assert ".." not in value
