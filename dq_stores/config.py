"""Where the stores live: one resolution of the configuration for every entry point.

The ``dq-stores`` CLI, ``open_stores()``, the Dagster ``DQStoresResource`` and the demo code
location all resolve an unset setting the same way, from the same environment variables:

* ``DQ_STORES_URL`` - the metadata store; default: SQLite at ``$DAGSTER_HOME/dq/dq.db`` when
  ``DAGSTER_HOME`` is set (the store a Dagster instance's runs write to), else ``.dq/dq.db``;
* ``DQ_STORES_SCHEMA`` - the Postgres schema (ignored for other backends);
* ``DQ_STORES_RESULTS_URL`` - where large results go (default: the backend's own, see
  ``dq_stores.payloads``);
* Azure credentials are read by the Blob client itself (``AZURE_STORAGE_CONNECTION_STRING``,
  ``AZURE_STORAGE_KEY``, ``AZURE_STORAGE_SAS_TOKEN``, or ``DefaultAzureCredential``).

This module only resolves and describes settings; it opens nothing and creates nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dq_stores.secrets import redact

__all__ = [
    "DEFAULT_URL",
    "RESULTS_URL_ENV",
    "SCHEMA_ENV",
    "URL_ENV",
    "StoresConfig",
    "default_url",
    "is_postgres_url",
]

URL_ENV = "DQ_STORES_URL"
SCHEMA_ENV = "DQ_STORES_SCHEMA"
RESULTS_URL_ENV = "DQ_STORES_RESULTS_URL"

DEFAULT_URL = "sqlite:///.dq/dq.db"
"""The embedded default outside Dagster: a SQLite file under ``.dq/`` in the working directory."""


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """SQLite under ``$DAGSTER_HOME/dq/dq.db`` when ``DAGSTER_HOME`` is set, else ``.dq/dq.db``."""
    env = os.environ if environ is None else environ
    home = env.get("DAGSTER_HOME")
    if home:
        return f"sqlite:///{Path(home).expanduser() / 'dq' / 'dq.db'}"
    return DEFAULT_URL


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme.lower().split("+")[0] in {"postgresql", "postgres"}


@dataclass(frozen=True)
class StoresConfig:
    """A resolved store configuration: the URL, the Postgres schema and the results location,
    each with where it came from (``"argument"``, the environment variable's name, ``"default"``).
    """

    url: str
    schema: str | None = None
    results_url: str | None = None
    url_from: str = "argument"
    schema_from: str | None = None
    results_url_from: str | None = None

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        *,
        schema: str | None = None,
        results_url: str | None = None,
        use_env: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> StoresConfig:
        """Fill what the caller left unset from the environment (unless ``use_env`` is false),
        then from the defaults. ``DQ_STORES_SCHEMA`` applies to Postgres URLs only.
        """
        env: Mapping[str, str] = (os.environ if environ is None else environ) if use_env else {}
        url_from = "argument"
        if not url:
            if env.get(URL_ENV):
                url, url_from = env[URL_ENV], URL_ENV
            else:
                url, url_from = default_url(environ if use_env else {}), "default"
        schema_from: str | None = "argument" if schema else None
        if not schema and env.get(SCHEMA_ENV) and is_postgres_url(url):
            schema, schema_from = env[SCHEMA_ENV], SCHEMA_ENV
        results_from: str | None = "argument" if results_url else None
        if not results_url and env.get(RESULTS_URL_ENV):
            results_url, results_from = env[RESULTS_URL_ENV], RESULTS_URL_ENV
        return cls(url, schema or None, results_url or None, url_from, schema_from, results_from)

    def describe(self) -> str:
        """``<url> (schema S)``, with every secret redacted: for messages naming the store."""
        schema = f" (schema {self.schema})" if self.schema else ""
        return f"{redact(self.url)}{schema}"
