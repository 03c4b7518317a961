"""``open_stores(url)``: the four stores of one backend, chosen by URL scheme.

Backends are imported lazily (fsspec-style registry), so the Azure SDK costs nothing until an
``azure-blob://`` URL is opened. This module opens and closes backends; it holds no store logic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from dq_stores.base import ActionProfileStore, ContractStore, JobDefinitionStore, JobRunStore
from dq_stores.errors import InvalidArtifactError

__all__ = ["DEFAULT_URL", "Stores", "open_stores", "redact_url", "register_backend"]

DEFAULT_URL = "sqlite:///.dq/dq.db"
"""The embedded default: a SQLite file under ``.dq/`` in the working directory."""


@dataclass
class Stores:
    """The four stores of one backend; closing it releases the shared connections/clients."""

    contracts: ContractStore
    job_definitions: JobDefinitionStore
    action_profiles: ActionProfileStore
    job_runs: JobRunStore
    url: str = "<unknown>"
    """The URL the stores were opened with, with any secret redacted."""
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Stores(url={self.url!r})"


# scheme -> "module:function"; the function takes (url, **options) and returns Stores.
_BACKENDS: dict[str, str] = {
    "memory": "dq_stores.sql.backend:open_sql_stores",
    "sqlite": "dq_stores.sql.backend:open_sql_stores",
    "postgresql": "dq_stores.sql.backend:open_sql_stores",
    "postgresql+psycopg": "dq_stores.sql.backend:open_sql_stores",
    "postgres": "dq_stores.sql.backend:open_sql_stores",
    "file": "dq_stores.filesystem:open_filesystem_stores",
    "azure-blob": "dq_stores.blob:open_blob_stores",
}
_INSTALL_HINTS = {"azure-blob": "pip install 'dq-stores[azure]'"}


def register_backend(scheme: str, target: str) -> None:
    """Map a URL scheme to ``"module:function"`` (a third-party backend)."""
    _BACKENDS[scheme] = target


def redact_url(url: str) -> str:
    """``url`` with any password, key, SAS signature or token replaced by ``***``."""
    from dq_stores.secrets import redact

    return redact(url)


def open_stores(url: str | None = None, *, results_url: str | None = None, **options: Any) -> Stores:
    """Open the four stores at ``url`` (default: ``DQ_STORES_URL``, then the embedded SQLite).

    ``results_url`` says where large job-run results go (``file://...`` or ``azure-blob://...``);
    ``options`` are passed to the backend (e.g. ``schema=`` for Postgres).
    """
    import os

    url = url or os.environ.get("DQ_STORES_URL") or DEFAULT_URL
    scheme = urlsplit(url).scheme
    target = _BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted(_BACKENDS))
        raise InvalidArtifactError(f"unknown store URL scheme {scheme!r}; known: {known}", field="url")
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(scheme, "")
        raise InvalidArtifactError(
            f"backend for {scheme}:// is not installed ({exc}). {hint}".strip(), field="url"
        ) from exc
    opener: Callable[..., Stores] = getattr(module, func_name)
    if results_url is not None:
        options["results_url"] = results_url
    return opener(url, **options)
