"""Constants, errors and small helpers shared by the filesystem backend's modules.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).
"""

from __future__ import annotations

import builtins
import errno
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from dq_stores.errors import (
    InvalidArtifactError,
)
from dq_stores.inputs import parse_sortable_time, sortable_time
from dq_stores.scope import validate_id

INDEX_FILE = ".index.json"
LOCK_FILE = ".lock"
HISTORY_DIR = ".history"
_INDEX_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 64
_MAX_VERSION_KEY = 4096  # generous bound of dq_stores.versions.version_key for a 128-char version
DEFAULT_LOCK_TIMEOUT = 60.0

R = TypeVar("R")


# -- small helpers ------------------------------------------------------------------------------


class _Stale(Exception):
    """An artifact file disagrees with the index (hand edit, git pull, crash): rebuild, retry."""

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.folder = folder


class _CorruptIndex(Exception):
    """The index file cannot be used; it is rebuilt from the files."""


@contextmanager
def _read_only_tolerated() -> Iterator[None]:
    """Repairs are best effort on a read-only tree (a mounted git checkout): skip them there."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise


def _etag(revision: int, stamp: int, content_hash: str) -> str:
    return f"{revision}-{stamp:x}-{content_hash[:12]}"


def _stamp_time(stamp: int) -> datetime:
    return _EPOCH + timedelta(microseconds=stamp // 1000)


def _next_stamp(last: int) -> int:
    return max(time.time_ns(), last + 1)


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _CorruptIndex(key)
    return value


def _opt_field(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise _CorruptIndex(key)
    return value


def _str_list(raw: Mapping[str, Any], key: str) -> builtins.list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _CorruptIndex(key)
    return value


def _forged_cursor() -> InvalidArtifactError:
    return InvalidArtifactError("cursor is not one this store issued", field="cursor")


def _cursor_id(value: Any) -> str:
    try:
        return validate_id(value, "cursor")
    except InvalidArtifactError as exc:
        raise _forged_cursor() from exc


def _version_cursor(after: Sequence[Any]) -> tuple[str, str, str]:
    """``[artifact_id, version_key, version]`` as this store issues them, or a refusal."""
    artifact_id, vkey, version = after
    if not isinstance(vkey, str) or not 0 < len(vkey) <= _MAX_VERSION_KEY:
        raise _forged_cursor()
    return _cursor_id(artifact_id), vkey, _cursor_id(version)


def _run_cursor(after: Sequence[Any]) -> tuple[str, str, str]:
    """``[run_time, job_id, environment]`` as this store issues them, or a refusal."""
    run_time, job_id, environment = after
    return sortable_time(parse_sortable_time(run_time)), _cursor_id(job_id), _cursor_id(environment)


def _is_id(name: str) -> bool:
    try:
        validate_id(name, "name")
    except InvalidArtifactError:
        return False
    return True
