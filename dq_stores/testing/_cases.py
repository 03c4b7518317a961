"""Shared pieces of the conformance suite: one uniform handle per versioned store kind, the list
of hostile ids, and small assertion helpers. Test classes live in the ``_*_suite`` modules; this
module holds no tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pytest

from dq_stores.base import Page, Store, VersionedStore
from dq_stores.canonical import canonical_json
from dq_stores.errors import InvalidArtifactError
from dq_stores.models import DataContract
from dq_stores.models.common import CanonicalModel
from dq_stores.stores import Stores
from dq_stores.testing.builders import (
    make_action_profile,
    make_contract,
    make_job_definition,
    replace_fields,
)

__all__ = [
    "BAD_IDS",
    "VERSIONED_KINDS",
    "VersionedCase",
    "assert_invalid",
    "canon",
    "collect_pages",
    "pager",
    "require_capability",
    "versioned_case",
]

VERSIONED_KINDS: Final = ("contracts", "job_definitions", "action_profiles")

BAD_IDS: Final[dict[str, object]] = {
    "dotdot": "..",
    "dotdot-inside": "a..b",
    "leading-dot": ".hidden",
    "slash": "a/b",
    "traversal": "../etc",
    "backslash": "a\\b",
    "empty": "",
    "too-long": "x" * 129,
    "fullwidth-dot": "a\uff0eb",
    "one-dot-leader": "a\u2024\u2024b",
    "cyrillic-a": "\u0430bc",
    "nul": "a\x00b",
    "newline": "a\nb",
    "space": "a b",
    "percent": "a%2Fb",
    "not-a-string": 42,
}
"""Ids every store must refuse with ``InvalidArtifactError`` before a backend sees them."""


def require_capability(store: Store[Any], flag: str) -> None:
    """Skip the calling test when ``store`` declares ``flag`` (a ``supports_*`` flag) False."""
    if not getattr(store, flag):
        pytest.skip(f"{type(store).__name__} declares {flag} = False")


@dataclass(frozen=True)
class VersionedCase:
    """One versioned store kind behind a uniform interface, so one test covers all three."""

    kind: str
    store: VersionedStore[Any]
    _make: Callable[..., CanonicalModel]

    def make(
        self,
        tenant: str,
        environment: str,
        artifact_id: str = "art-1",
        version: str = "1.0.0",
        *,
        name: str | None = None,
        retired: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        return self._make(
            tenant,
            environment,
            artifact_id,
            version,
            name=name,
            status="retired" if retired else self.live_status,
            metadata=metadata,
        )

    @property
    def live_status(self) -> str:
        return "approved" if self.kind == "contracts" else "active"

    def set_retired(self, artifact: Any, retired: bool) -> Any:
        """A copy of ``artifact`` with its lifecycle status set to retired (or back to live)."""
        status = "retired" if retired else self.live_status
        if isinstance(artifact, DataContract):
            lifecycle = artifact.lifecycle.model_dump(mode="json", exclude_unset=True)
            return replace_fields(artifact, lifecycle={**lifecycle, "status": status})
        return replace_fields(artifact, status=status)

    @staticmethod
    def changed(artifact: Any, marker: object) -> Any:
        """A copy of ``artifact`` with different content (``metadata.marker``)."""
        metadata = dict(artifact.metadata)
        metadata["marker"] = marker
        return replace_fields(artifact, metadata=metadata)


def versioned_case(stores: Stores, kind: str) -> VersionedCase:
    if kind == "contracts":
        return VersionedCase(kind, stores.contracts, make_contract)
    if kind == "job_definitions":
        return VersionedCase(kind, stores.job_definitions, make_job_definition)
    if kind == "action_profiles":
        return VersionedCase(kind, stores.action_profiles, make_action_profile)
    raise ValueError(f"not a versioned kind: {kind!r}")


def collect_pages(fetch: Callable[[str | None], Page[Any]], *, limit: int) -> tuple[list[Any], int]:
    """Follow cursors from the first page to the last; return every item and the page count.

    Checks on the way what every keyset listing promises: full pages until the last, a ``None``
    cursor exactly on the last page, and no endless loop.
    """
    items: list[Any] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        pages += 1
        assert len(page.items) <= limit, f"page {pages} holds {len(page.items)} items, limit is {limit}"
        items.extend(page.items)
        if page.next_cursor is None:
            return items, pages
        assert len(page.items) == limit, (
            f"page {pages} is short ({len(page.items)} < {limit}) yet has a next cursor"
        )
        assert pages < 10_000, "pagination does not terminate"
        cursor = page.next_cursor


def pager(
    store: Any, tenant: str, environment: str, limit: int, **filters: Any
) -> Callable[[str | None], Page[Any]]:
    """``cursor -> page`` of ``store.list`` with fixed arguments, for ``collect_pages``."""

    def fetch(cursor: str | None) -> Page[Any]:
        page: Page[Any] = store.list(tenant, environment, limit=limit, cursor=cursor, **filters)
        return page

    return fetch


def canon(value: Any) -> bytes:
    return canonical_json(value)


def assert_invalid(exc_info: pytest.ExceptionInfo[InvalidArtifactError], *fields: str) -> None:
    """The refusal names one of ``fields`` (exactly, or as the last part of a dotted path)."""
    exc = exc_info.value
    named = exc.field or ""
    assert named in fields or named.rsplit(".", 1)[-1] in fields, (
        f"error names field {exc.field!r}, expected one of {fields}: {exc}"
    )
