"""Scope (tenant + environment) and the one place where ids are validated.

Every store method validates its tenant, environment, ids and versions here, before any backend
sees them, so no backend has to think about path traversal, control characters, SQL quoting or
over-long names. Nothing in this module does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dq_stores.errors import InvalidArtifactError, ScopeViolationError

__all__ = ["MAX_ID_LENGTH", "Scope", "check_artifact_scope", "validate_id"]

MAX_ID_LENGTH = 128
# ASCII letters, digits and ``._-`` only: safe as a path segment, a blob name segment and a
# cache key on every backend. Unicode look-alikes (fullwidth dots, ...) are refused, not folded.
_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


_VALID: set[str] = set()
"""Ids already found valid (exact ``str`` only): every store call validates the same few tenants,
environments and ids over and over, and a set lookup costs a fraction of the regex."""
_VALID_MAX = 65536


def validate_id(value: object, field: str) -> str:
    """Return ``value`` if it is a valid id for ``field``; raise ``InvalidArtifactError`` if not.

    Rules: a string of 1..128 characters from ``A-Z a-z 0-9 . _ -``, not starting with a dot and
    not containing ``..``.
    """
    if type(value) is str and value in _VALID:
        return value
    if not isinstance(value, str):
        raise InvalidArtifactError(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not value:
        raise InvalidArtifactError(f"{field} must not be empty", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArtifactError(
            f"{field} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed",
            field=field,
        )
    if _ID_RE.fullmatch(value) is None:
        raise InvalidArtifactError(
            f"{field} {value[:40]!r} may only contain letters, digits, '.', '_' and '-'",
            field=field,
        )
    if value.startswith(".") or ".." in value:
        raise InvalidArtifactError(f"{field} {value!r} must not start with '.' or contain '..'", field=field)
    if type(value) is str:  # not a subclass: its __eq__ / __hash__ could lie
        if len(_VALID) >= _VALID_MAX:
            _VALID.clear()
        _VALID.add(value)
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """A validated (tenant, environment) pair; the unit of isolation of every store."""

    tenant: str
    environment: str

    def __post_init__(self) -> None:
        validate_id(self.tenant, "tenant")
        validate_id(self.environment, "environment")

    def __str__(self) -> str:
        return f"{self.tenant}/{self.environment}"


def check_artifact_scope(scope: Scope, tenant_id: str, environment: str, what: str) -> None:
    """Refuse an artifact whose own tenant/environment differ from ``scope``."""
    if tenant_id != scope.tenant or environment != scope.environment:
        raise ScopeViolationError(f"{what} belongs to {tenant_id}/{environment}, not to scope {scope}")
