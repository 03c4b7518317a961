"""Canonical JSON: the one stored form of every artifact, and its sha256 content hash.

Canonical JSON is UTF-8, sorted keys, compact separators, no NaN or infinity, timestamps in UTC
with a ``Z`` suffix. A model's canonical form holds exactly the fields that were set (given in the
document or by the caller); defaults are not written out, so a document round-trips through every
backend byte-identically. This module must stay free of I/O and backend knowledge.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from dq_stores.errors import InvalidArtifactError

__all__ = ["canonical_json", "content_hash", "format_timestamp", "sha256_hex", "to_jsonable"]

_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_timestamp(value: datetime) -> str:
    """UTC, ``Z`` suffix, microseconds only when non-zero. Naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year >= 1000:
        # isoformat is C and drops zero microseconds just like the format below; it ends in
        # "+00:00" for UTC. Several per document, on every put: about 5x faster than strftime.
        return f"{value.isoformat()[:-6]}Z"
    # glibc's %Y does not zero-pad years before 1000, and stored documents keep that form.
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(spec)


def to_jsonable(obj: Any) -> Any:
    """A model (its set fields) or plain JSON value, as plain JSON types."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return obj


def canonical_json(obj: Any) -> bytes:
    """Encode a pydantic model or a JSON-compatible value in canonical form."""
    try:
        return _encoder.encode(to_jsonable(obj)).encode("utf-8")
    except ValueError as exc:  # NaN / infinity
        raise InvalidArtifactError(f"not canonical JSON: {exc}", field="<value>") from exc
    except TypeError as exc:
        raise InvalidArtifactError(f"not JSON-serialisable: {exc}", field="<value>") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(obj: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``obj``."""
    return sha256_hex(canonical_json(obj))
