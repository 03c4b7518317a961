"""Checks of the arguments callers pass to the Store API, and the keyset cursors it issues.

Written once and used by every store (``dq_stores.base``) and by the claim check
(``dq_stores.results``): page sizes, write options, filters, content types, labels, timestamps,
and the opaque cursors of keyset pagination. Nothing here does I/O or knows a backend.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from dq_stores.errors import InvalidArtifactError
from dq_stores.scope import validate_id

__all__ = [
    "KEY_PREFIX_RE",
    "MAX_PAGE_SIZE",
    "check_label",
    "check_limit",
    "check_media_type",
    "check_text",
    "check_write_options",
    "decode_artifact_cursor",
    "decode_cursor",
    "decode_run_cursor",
    "encode_cursor",
    "enum_value",
    "opt_str",
    "opt_time",
    "parse_sortable_time",
    "sortable_time",
]

MAX_PAGE_SIZE = 1000


# -- cursors ------------------------------------------------------------------------------------


def encode_cursor(values: Sequence[Any]) -> str:
    """Opaque keyset cursor: the sort key of the last item of a page."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    return values


def sortable_time(value: datetime) -> str:
    """Fixed-width UTC text of a timestamp (always microseconds): sorts like the datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Not strftime: glibc does not zero-pad years before 1000, which would break the ordering;
    # isoformat pads to four digits and, with this timespec, always writes the microseconds.
    return f"{value.isoformat(timespec='microseconds')[:-6]}Z"


def parse_sortable_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc


def decode_artifact_cursor(cursor: str | None) -> list[Any] | None:
    """``[artifact_id, version_key, version]``, each checked, or ``None``."""
    values = decode_cursor(cursor, 3)
    if values is None:
        return None
    aid, vkey, ver = values
    try:
        validate_id(aid, "cursor")
        validate_id(ver, "cursor")
    except InvalidArtifactError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    if not isinstance(vkey, str) or len(vkey) > 1024:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    return values


def decode_run_cursor(cursor: str | None) -> list[Any] | None:
    """``[run_time, job_id, environment]``, each checked, or ``None``."""
    values = decode_cursor(cursor, 3)
    if values is None:
        return None
    parse_sortable_time(values[0])
    try:
        validate_id(values[1], "cursor")
        validate_id(values[2], "cursor")
    except InvalidArtifactError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    return values


def check_write_options(if_match: Any, create_only: Any) -> None:
    # Checked here, not left to a driver: a list bound as an etag is a database error there.
    if if_match is not None and not isinstance(if_match, str):
        raise InvalidArtifactError("if_match must be an etag string", field="if_match")
    if not isinstance(create_only, bool):
        raise InvalidArtifactError("create_only must be True or False", field="create_only")


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArtifactError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    return limit


def enum_value(value: Any, enum: type[Enum], field_name: str) -> str:
    try:
        return str(enum(value).value)
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidArtifactError(
            f"{field_name} {value!r} is not one of: {allowed}", field=field_name
        ) from exc


def opt_str(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise InvalidArtifactError(f"{field_name} must be a non-empty string", field=field_name)
    return check_text(value, field_name)


def check_text(value: str, field_name: str) -> str:
    """Refuse text no backend can bind: NUL (Postgres text) and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise InvalidArtifactError(f"{field_name} must not contain NUL characters", field=field_name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArtifactError(
            f"{field_name} is not valid Unicode text (lone surrogate at {exc.start})", field=field_name
        ) from exc
    return value


KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9._/-]*")

# RFC 6838 type/subtype, optionally with ``; name=value`` parameters: it is sent as an HTTP header
# by the Blob payload store, so a CR/LF or control character must never get through.
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE_RE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[\x20\x21\x23-\x5b\x5d-\x7e]*\"))*"
)


def check_media_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 255 or _CONTENT_TYPE_RE.fullmatch(value) is None:
        shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
        raise InvalidArtifactError(
            f"content_type {shown} is not a media type such as application/json", field="content_type"
        )
    return value


def check_label(value: Any, field_name: str) -> str | None:
    """An optional short printable label (no control characters), e.g. a result type."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise InvalidArtifactError(f"{field_name} must be 1 to 128 printable characters", field=field_name)
    return value


def opt_time(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArtifactError(f"{field_name} must be a datetime", field=field_name)
    from dq_stores.models.common import _to_utc

    return _to_utc(value)
