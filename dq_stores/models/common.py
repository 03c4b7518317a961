"""Shared pieces of the canonical models: the base class, UTC timestamps, id fields.

Models hold data and validate it; they never do I/O. Unknown fields are refused everywhere
(``extra="forbid"``) except inside free-form ``metadata`` / ``parameters`` maps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

from dq_stores.canonical import format_timestamp
from dq_stores.scope import validate_id

__all__ = ["CanonicalModel", "Id", "JsonMap", "JsonScalar", "UtcDatetime", "utcnow"]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check_id(value: str) -> str:
    # The scope module is the one place that knows what an id may be; pydantic turns the
    # ValueError it raises into a field error that names the field.
    validate_id(value, "id")
    return value


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A timezone-aware UTC datetime; naive input is taken as UTC; serialised with a ``Z``."""

Id = Annotated[str, AfterValidator(_check_id)]
"""A tenant, environment, artifact id or version: see ``dq_stores.scope.validate_id``."""

JsonScalar = bool | int | float | str
JsonMap = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


class CanonicalModel(BaseModel):
    """Base of every stored model: strict about unknown fields, no NaN/infinity."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        # Keep NaN/infinity inside free-form maps as floats when dumping, so the canonical encoder
        # refuses them (pydantic's default would silently turn them into null).
        ser_json_inf_nan="constants",
        validate_assignment=True,
        populate_by_name=True,
        use_enum_values=False,
    )

    def canonical_json(self) -> bytes:
        from dq_stores.canonical import canonical_json

        return canonical_json(self)
