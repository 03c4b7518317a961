"""``open_stores(url)``: the one way stores and their results locations are opened.

Two tables of URL schemes, each entry a lazily imported ``"module:function"`` (fsspec-style, so
the Azure SDK costs nothing until an ``azure-blob://`` URL is opened):

* metadata backends (``sqlite``, ``postgresql``, ``memory``, ``file``, ``azure-blob``) open the four
  stores on one connection and return a ``Backend`` - metadata only, nothing about results but the
  backend's *default* results location and any older ones it still reads;
* results locations (``file``, ``azure-blob``, ``memory``) open a ``PayloadStore`` with their own
  options and credentials (``results_options``).

``open_stores`` resolves the configuration (``dq_stores.config``), opens the backend, opens the
results location (the given one, else the backend's default), attaches the claim check
(``JobRunStore.configure_results``) and returns ``Stores``, whose ``close()`` releases all of it.
This module holds no store logic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from dq_stores.base import ActionProfileStore, ContractStore, JobDefinitionStore, JobRunStore
from dq_stores.config import DEFAULT_URL, StoresConfig, is_postgres_url
from dq_stores.errors import InvalidArtifactError
from dq_stores.results.payloads import PayloadStore
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact

__all__ = [
    "DEFAULT_URL",
    "Backend",
    "ScopeLister",
    "Stores",
    "open_payload_store",
    "open_stores",
    "redact_url",
    "register_backend",
    "register_results",
]

ScopeLister = Callable[[str | None, str | None], list[Scope]]


@dataclass
class Stores:
    """The four stores of one backend with their results location; ``close()`` (or leaving the
    ``with`` block) releases the shared connections and clients.
    """

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

    def close_after(self, close: Callable[[], None]) -> None:
        """Run ``close`` once everything else the stores hold is closed (e.g. a client whose
        connections the stores use).
        """
        self._closers.insert(0, close)

    def close(self) -> None:
        """Release everything the stores hold; closing twice is harmless."""
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
        """Where large results go, redacted (says so when there is no such place)."""
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


def _no_results() -> PayloadStore | None:
    return None


@dataclass
class Backend:
    """What a metadata backend's opener returns: the four stores on one connection."""

    contracts: ContractStore
    job_definitions: JobDefinitionStore
    action_profiles: ActionProfileStore
    job_runs: JobRunStore
    url: str
    """The URL, secrets redacted."""
    close: Callable[[], None]
    list_scopes: ScopeLister | None = None
    """One call listing the scopes of all four kinds, if the backend has one (else per store)."""
    default_results: Callable[[], PayloadStore | None] = _no_results
    """The backend's own results location when none is given (closed with the backend)."""
    legacy_results: Sequence[PayloadStore] = ()
    """Older locations whose payloads the stores still read (never written or collected)."""


# scheme -> "module:function"; the function takes (url, *, create, **options) and returns Backend.
_BACKENDS: dict[str, str] = {
    "memory": "dq_stores.sql.backend:open_sql_backend",
    "sqlite": "dq_stores.sql.backend:open_sql_backend",
    "postgresql": "dq_stores.sql.backend:open_sql_backend",
    "postgresql+psycopg": "dq_stores.sql.backend:open_sql_backend",
    "postgres": "dq_stores.sql.backend:open_sql_backend",
    "file": "dq_stores.filesystem:open_filesystem_backend",
    "azure-blob": "dq_stores.blob:open_blob_backend",
}
# scheme -> "module:function"; the function takes (url, **results_options) and returns a PayloadStore.
_RESULTS: dict[str, str] = {
    "file": "dq_stores.results.files:open_file_payloads",
    "memory": "dq_stores.results.memory:open_memory_payloads",
    "azure-blob": "dq_stores.blob.payloads:open_blob_payload_store",
}
_INSTALL_HINTS = {"azure-blob": "pip install 'dq-stores[azure]'"}


def register_backend(scheme: str, target: str) -> None:
    """Map a store URL scheme to ``"module:function"`` (a third-party backend). The function
    takes ``(url, *, create, **options)`` and returns a ``Backend`` (or, the older contract, a
    ready ``Stores``).
    """
    _BACKENDS[scheme] = target


def register_results(scheme: str, target: str) -> None:
    """Map a results URL scheme to ``"module:function"`` returning a ``PayloadStore``."""
    _RESULTS[scheme] = target


def redact_url(url: str) -> str:
    """``url`` with any password, key, SAS signature or token replaced by ``***``."""
    return redact(url)


def _load(table: Mapping[str, str], scheme: str, what: str) -> Callable[..., Any]:
    target = table.get(scheme)
    if target is None:
        known = ", ".join(sorted(table))
        kind = "store URL" if what == "url" else what
        raise InvalidArtifactError(f"unknown {kind} scheme {scheme!r}; known: {known}", field=what)
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(scheme, "")
        raise InvalidArtifactError(
            f"{what} backend for {scheme}:// is not installed ({exc}). {hint}".strip(), field=what
        ) from exc
    opener: Callable[..., Any] = getattr(module, func_name)
    return opener


def open_payload_store(url: str, **options: Any) -> PayloadStore:
    """A results location from its URL (``file://``, ``azure-blob://``, ``memory://``) with its
    own options and credentials (e.g. ``connection_string=`` for Blob).
    """
    store: PayloadStore = _load(_RESULTS, urlsplit(url).scheme, "results_url")(url, **options)
    return store


def open_stores(
    url: str | None = None,
    *,
    results_url: str | None = None,
    schema: str | None = None,
    create: bool = True,
    use_env: bool = True,
    offload_threshold: int | None = None,
    results_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stores:
    """Open the four stores at ``url`` and their results location.

    Unset settings come from the environment exactly as for the CLI and the Dagster resource
    (``dq_stores.config``): ``DQ_STORES_URL`` (else SQLite at ``$DAGSTER_HOME/dq/dq.db`` or
    ``.dq/dq.db``), ``DQ_STORES_SCHEMA`` (Postgres), ``DQ_STORES_RESULTS_URL``; ``use_env=False``
    ignores the environment. ``results_url`` says where large job-run results go (``file://``,
    ``azure-blob://`` or ``memory://``; default: the backend's own), opened with
    ``results_options`` (its credentials); ``offload_threshold`` is the size in bytes above which
    results leave the metadata store. ``create=False`` opens an existing store only: nothing
    (database file, tables, folder) is created, and a missing store raises
    ``StoreNotFoundError``. ``options`` go to the metadata backend (e.g. ``row_level_security=True``
    for Postgres, ``connection_string=`` for Blob).
    """
    config = StoresConfig.resolve(url, schema=schema, results_url=results_url, use_env=use_env)
    scheme = urlsplit(config.url).scheme
    opener = _load(_BACKENDS, scheme, "url")
    if config.schema is not None:
        if not is_postgres_url(config.url):
            raise InvalidArtifactError(
                f"a schema applies to PostgreSQL URLs only, not {scheme}://", field="schema"
            )
        options["schema"] = config.schema
    opened = opener(config.url, create=create, **options)
    if isinstance(opened, Stores):  # a third-party backend of the older contract
        opened.schema = config.schema
        return opened
    backend: Backend = opened
    stores: Stores | None = None
    try:
        stores = Stores(
            contracts=backend.contracts,
            job_definitions=backend.job_definitions,
            action_profiles=backend.action_profiles,
            job_runs=backend.job_runs,
            url=backend.url,
            schema=config.schema,
            _scope_lister=backend.list_scopes,
        )
        stores.add_closer(backend.close)
        if config.results_url is not None:
            payloads: PayloadStore | None = open_payload_store(config.results_url, **(results_options or {}))
            assert payloads is not None
            stores.add_closer(payloads.close)
        else:
            if results_options:
                raise InvalidArtifactError("results_options need a results_url", field="results_options")
            payloads = backend.default_results()
        stores.job_runs.configure_results(payloads, offload_threshold, legacy=backend.legacy_results)
    except BaseException:
        if stores is not None:
            stores.close()
        else:
            backend.close()
        raise
    return stores
