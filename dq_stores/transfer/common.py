"""What the transfer modules share: the kinds in transfer order, and small helpers.

Nothing here prints, parses options or knows about click; nothing reaches behind the public
Store API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dq_stores.base import VersionedStore
from dq_stores.kinds import ACTION_PROFILES, CONTRACTS, JOB_DEFINITIONS, JOB_RUNS, Kind
from dq_stores.secrets import redact
from dq_stores.stores import Stores

__all__ = ["VERSIONED_KINDS", "is_exported_result", "one_line", "versioned"]

VERSIONED_KINDS: tuple[Kind[Any], ...] = (CONTRACTS, ACTION_PROFILES, JOB_DEFINITIONS)
"""Versioned kinds in the order they are imported and copied (referenced before referencing)."""


def versioned(stores: Stores, kind: Kind[Any]) -> VersionedStore[Any]:
    store: VersionedStore[Any] = getattr(stores, kind.name)
    return store


def is_exported_result(path: Path) -> bool:
    """Payload files written by an export (skipped when importing documents)."""
    return ".result." in path.name and path.parent.name == JOB_RUNS.name


def one_line(exc: BaseException | str) -> str:
    """An error (or text) as one line with any secret redacted."""
    text = " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    return redact(text)
