"""The one error hierarchy of dq_stores.

Every backend translates its driver or SDK errors into these classes with ``raise ... from exc``,
so callers catch ``StoreError`` (or a subclass) and never a psycopg, sqlite3, OSError or Azure
exception. Messages name the field at fault and never contain a secret (passwords, keys, SAS
tokens): backends pass redacted locations only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendUnavailableError",
    "ConflictError",
    "InvalidArtifactError",
    "NoResultsLocationError",
    "NotFoundError",
    "PayloadIntegrityError",
    "SchemaVersionError",
    "ScopeViolationError",
    "StoreError",
    "StoreNotFoundError",
]


class StoreError(Exception):
    """Base class of every error a store raises."""


class NotFoundError(StoreError):
    """The artifact, revision or payload does not exist in the given scope."""


class ConflictError(StoreError):
    """A write lost a race: stale ``if_match`` etag, ``create_only`` on an existing key, or a
    concurrent writer created the same key first.
    """


class ScopeViolationError(StoreError):
    """An artifact's own ``tenant_id``/``environment`` differ from the scope it is used in."""


class InvalidArtifactError(StoreError, ValueError):
    """Bad input: an id, scope or document that does not validate.

    ``field`` names the first offending field (dotted path); ``errors`` holds every problem as
    ``(field, message)`` pairs so a caller can report all of them at once.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors: list[tuple[str, str]] = list(errors) or ([(field, message)] if field else [])

    @classmethod
    def from_pydantic(cls, exc: Any, *, what: str) -> InvalidArtifactError:
        """Wrap a ``pydantic.ValidationError``, naming every field (dotted path) at fault."""
        problems: list[tuple[str, str]] = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(part) for part in err.get("loc", ())) or "<root>"
            msg = str(err.get("msg", "invalid"))
            if err.get("type") == "extra_forbidden":
                msg = "unknown field"
            problems.append((loc, msg))
        shown = "; ".join(f"{loc}: {msg}" for loc, msg in problems[:10])
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        first = problems[0][0] if problems else None
        return cls(f"invalid {what}: {shown}{more}", field=first, errors=problems)


class BackendUnavailableError(StoreError):
    """The backend cannot be reached or failed mid-call (network, database down, disk full).

    Nothing half-written stays behind: the call either happened entirely or not at all. Retrying
    is safe, but when only the reply was lost the first attempt did commit, so a retry with the
    same ``if_match`` may get ``ConflictError``: re-read and decide.
    """


class NoResultsLocationError(StoreError):
    """A result must go to a results location (it is larger than the offload threshold, or the
    backend keeps nothing inline) and the stores were opened without one.
    """


class StoreNotFoundError(StoreError):
    """The store itself, or its results location, does not exist: a missing Blob container, an
    empty database or schema opened by a command that must not create one, a missing folder.
    Retrying does not help; create it (``dq-stores db upgrade``, ``create_container=true``) or fix
    the URL.
    """


class SchemaVersionError(StoreError):
    """The database schema is not the one this version of dq_stores knows (newer, or older and
    not upgraded). The message says which command fixes it.
    """


class PayloadIntegrityError(StoreError):
    """A stored result payload does not match the sha256 or size its run record holds."""
