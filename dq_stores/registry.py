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
from dq_stores.config import DEFAULT_URL, StoresConfig, is_postgres_url
from dq_stores.errors import InvalidArtifactError
from dq_stores.scope import Scope, validate_id

__all__ = ["DEFAULT_URL", "Stores", "open_stores", "redact_url", "register_backend"]

ScopeLister = Callable[[str | None, str | None], list[Scope]]


@dataclass
class Stores:
    """The four stores of one backend; closing it releases the shared connections/clients."""

    contracts: ContractStore
    job_definitions: JobDefinitionStore
    action_profiles: ActionProfileStore
    job_runs: JobRunStore
    url: str = "<unknown>"
    """The URL the stores were opened with, with any secret redacted."""
    schema: str | None = None
    """The Postgres schema, when one was chosen."""
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _scope_lister: ScopeLister | None = field(default=None, repr=False)

    def add_closer(self, close: Callable[[], None]) -> None:
        """Run ``close`` when the stores are closed (last added, first run)."""
        self._closers.append(close)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()

    def list_scopes(self, tenant: str | None = None, environment: str | None = None) -> list[Scope]:
        """Every (tenant, environment) holding any artifact or job run, sorted; optionally only
        those of ``tenant`` and/or ``environment``. One indexed query on SQL, a prefix listing on
        Blob, a folder listing on the filesystem. Nothing is created.
        """
        t = validate_id(tenant, "tenant") if tenant is not None else None
        e = validate_id(environment, "environment") if environment is not None else None
        if self._scope_lister is not None:
            found = set(self._scope_lister(t, e))
        else:
            found = set()
            for store in (self.contracts, self.job_definitions, self.action_profiles, self.job_runs):
                found.update(store.list_scopes(t, e))
        return sorted(found, key=lambda s: (s.tenant, s.environment))

    @property
    def results_location(self) -> str:
        """Where large results go, redacted (``"none (results stay inline)"`` when unset)."""
        return self.job_runs.results_location

    def describe(self) -> str:
        """``<url> (schema S), results in <location>``, secrets redacted: what a command names."""
        schema = f" (schema {self.schema})" if self.schema else ""
        return f"{self.url}{schema}, results in {self.results_location}"

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


def open_stores(
    url: str | None = None,
    *,
    results_url: str | None = None,
    schema: str | None = None,
    create: bool = True,
    use_env: bool = True,
    **options: Any,
) -> Stores:
    """Open the four stores at ``url``.

    Unset settings come from the environment exactly as for the CLI and the Dagster resource
    (``dq_stores.config``): ``DQ_STORES_URL`` (else SQLite at ``$DAGSTER_HOME/dq/dq.db`` or
    ``.dq/dq.db``), ``DQ_STORES_SCHEMA`` (Postgres), ``DQ_STORES_RESULTS_URL``; ``use_env=False``
    ignores the environment. ``results_url`` says where large job-run results go (``file://...``
    or ``azure-blob://...``). ``create=False`` opens an existing store only: nothing (database
    file, tables, folder) is created, and a missing store raises ``StoreNotFoundError``.
    ``options`` are passed to the backend (e.g. ``row_level_security=True`` for Postgres).
    """
    config = StoresConfig.resolve(url, schema=schema, results_url=results_url, use_env=use_env)
    scheme = urlsplit(config.url).scheme
    target = _BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted(_BACKENDS))
        raise InvalidArtifactError(f"unknown store URL scheme {scheme!r}; known: {known}", field="url")
    if config.schema is not None:
        if not is_postgres_url(config.url):
            raise InvalidArtifactError(
                f"a schema applies to PostgreSQL URLs only, not {scheme}://", field="schema"
            )
        options["schema"] = config.schema
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(scheme, "")
        raise InvalidArtifactError(
            f"backend for {scheme}:// is not installed ({exc}). {hint}".strip(), field="url"
        ) from exc
    opener: Callable[..., Stores] = getattr(module, func_name)
    if config.results_url is not None:
        options["results_url"] = config.results_url
    if not create:
        options["create"] = False
    stores = opener(config.url, **options)
    stores.schema = config.schema
    return stores
