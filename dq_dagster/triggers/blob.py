"""The blob-event trigger's pure core: new blobs under an EXTERNAL_EVENT job definition's
``event_filter`` (Azure Blob), the run each asks for (``evaluate_blob_events``), and reading such
a blob as a run's raw input (``read_raw_blob``, ``BlobSource``).

The Azure SDK is imported only when a blob is listed or read. No Dagster import here;
``dq_dagster.triggers.sensors`` wraps this in a sensor.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from dq_dagster.triggers.request import (
    Evaluation,
    PlannedRun,
    _dump_cursor,
    _iso,
    _load_cursor,
    _parse_iso,
    _state_key,
    definitions_per_tenant,
    resolve_contract,
)
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.models import ExternalEventTrigger, JobDefinition, TriggerType
from dq_stores.secrets import redact
from dq_stores.stores import Stores

if TYPE_CHECKING:
    import polars as pl

    from dq_stores.blob_client import BlobConnection

__all__ = [
    "BLOB_EVENT_SOURCES",
    "BlobItem",
    "BlobLister",
    "BlobSource",
    "blob_run_key",
    "evaluate_blob_events",
    "read_raw_blob",
]

BLOB_EVENT_SOURCES = frozenset({"azure_blob_event_grid", "azure_blob"})
"""``event_source`` values the blob sensor serves; other event sources are left to other sensors."""

_DEFAULT_LOOKBACK = timedelta(seconds=60)
_BLOB_SCOPES = {
    None: "version",
    "per_blob_version": "version",
    "per_blob_etag": "version",
    "per_blob_uri": "uri",
}


@dataclass(frozen=True)
class BlobItem:
    """One listed blob: its name in the container, etag, last-modified time and URI (no SAS)."""

    container: str
    name: str
    etag: str
    last_modified: datetime
    uri: str


BlobLister = Callable[[str, str, str], Iterable[BlobItem]]
"""``(tenant, container, name_prefix) -> blobs``; raises ``StoreError`` when it cannot list."""


def _literal_prefix(pattern: str) -> str:
    cut = len(pattern)
    for special in "*?[":
        index = pattern.find(special)
        if index != -1:
            cut = min(cut, index)
    return pattern[:cut]


def blob_run_key(tenant: str, environment: str, job_definition_id: str, blob: BlobItem, scope: str) -> str:
    """``dq-blob:<tenant>:<env>:<id>:<uri>`` for ``per_blob_uri`` (the blob runs once, whatever is
    written to it later), with ``@<etag>`` appended otherwise (each new content runs once).
    """
    suffix = "" if scope == "uri" else f"@{blob.etag}"
    return f"dq-blob:{tenant}:{environment}:{job_definition_id}:{blob.uri}{suffix}"


def evaluate_blob_events(
    stores: Stores,
    tenants: Sequence[str],
    environment: str,
    cursor: str | None,
    list_blobs: BlobLister,
    *,
    allows: Callable[[str, str], bool] = lambda tenant, container: True,
    lookback: timedelta = _DEFAULT_LOOKBACK,
    max_runs_per_definition: int = 100,
) -> Evaluation:
    """One tick of the blob sensor, without Dagster.

    Per definition the cursor keeps a watermark (the newest last-modified time acted on) and the
    blobs seen within ``lookback`` of it, so a blob committed in the same second as, or slightly
    before, one already seen is still caught, and none is requested twice. A definition seen for
    the first time (or whose container / pattern / idempotency scope changed) takes the blobs
    already there as its baseline: they are not run unless ``event_filter.process_existing`` is
    true. At most ``max_runs_per_definition`` blobs per definition per tick, oldest first; the
    rest follow at the next tick. ``allows(tenant, container)`` refuses containers a tenant may
    not read.
    """
    warnings: list[str] = []
    notes: list[str] = []
    old = _load_cursor(cursor, warnings)
    new: dict[str, Any] = {}
    runs: list[PlannedRun] = []
    for tenant, definitions in definitions_per_tenant(
        stores,
        tenants,
        environment,
        TriggerType.EXTERNAL_EVENT,
        old_cursor=old,
        new_cursor=new,
        warnings=warnings,
    ):
        for definition in definitions:
            trigger = definition.trigger
            assert isinstance(trigger, ExternalEventTrigger)
            if trigger.event_source not in BLOB_EVENT_SOURCES:
                continue
            key = _state_key(tenant, environment, definition.job_definition_id)
            what = f"job definition {key}@{definition.version}"
            planned, state = _evaluate_blob_definition(
                stores,
                definition,
                old.get(key),
                list_blobs,
                allows,
                lookback,
                max_runs_per_definition,
                what,
                warnings,
                notes,
            )
            if state is not None:
                new[key] = state
            runs.extend(planned)
    dropped = sorted(set(old) - set(new))
    if dropped:
        notes.append(f"no longer watching (paused, retired, removed or misconfigured): {', '.join(dropped)}")
    return Evaluation(runs, _dump_cursor(new), warnings, notes)


def _evaluate_blob_definition(
    stores: Stores,
    definition: JobDefinition,
    previous: Any,
    list_blobs: BlobLister,
    allows: Callable[[str, str], bool],
    lookback: timedelta,
    limit: int,
    what: str,
    warnings: list[str],
    notes: list[str],
) -> tuple[list[PlannedRun], dict[str, Any] | None]:
    trigger = definition.trigger
    assert isinstance(trigger, ExternalEventTrigger)
    tenant, environment = definition.tenant_id, definition.environment
    event_filter = trigger.event_filter
    container = event_filter.get("container")
    pattern = event_filter.get("path_pattern", "*")
    if not isinstance(container, str) or not container:
        warnings.append(f"{what}: skipped: event_filter.container is missing")
        return [], None
    if not isinstance(pattern, str) or not pattern:
        warnings.append(f"{what}: skipped: event_filter.path_pattern must be a non-empty string")
        return [], None
    scope = _BLOB_SCOPES.get(definition.idempotency_scope)
    if scope is None:
        known = ", ".join(sorted(k for k in _BLOB_SCOPES if k))
        warnings.append(
            f"{what}: skipped: idempotency_scope {definition.idempotency_scope!r} is not one of {known}"
        )
        return [], None
    if not allows(tenant, container):
        warnings.append(f"{what}: skipped: tenant {tenant} may not read container {container!r}")
        return [], None
    signature = hashlib.sha256(f"{container}\x00{pattern}\x00{scope}".encode()).hexdigest()[:16]
    state = previous if isinstance(previous, dict) and previous.get("f") == signature else None
    if previous is not None and state is None:
        notes.append(f"{what}: container, pattern or idempotency scope changed; taking a new baseline")
    try:
        listed = [
            b
            for b in list_blobs(tenant, container, _literal_prefix(pattern))
            if fnmatch.fnmatchcase(b.name, pattern)
        ]
    except StoreError as exc:
        warnings.append(f"{what}: cannot list container {container!r}: {redact(str(exc))}")
        return [], previous if isinstance(previous, dict) else None

    def seen_key(blob: BlobItem) -> str:
        return blob.name if scope == "uri" else f"{blob.name}@{blob.etag}"

    if state is None and not event_filter.get("process_existing", False):
        # Baseline: what is already there is not new.
        watermark = max((b.last_modified for b in listed), default=None)
        seen = {
            seen_key(b): _iso(b.last_modified)
            for b in listed
            if watermark and b.last_modified >= watermark - lookback
        }
        notes.append(
            f"{what}: watching {container}/{pattern}; {len(listed)} existing blob(s) taken as baseline"
        )
        return [], {"f": signature, "wm": _iso(watermark) if watermark else None, "seen": seen}
    if state is None:
        state = {"f": signature, "wm": None, "seen": {}}
    watermark = _parse_iso(state.get("wm"))
    seen = dict(state.get("seen") or {})
    fresh = sorted(
        (
            b
            for b in listed
            if (watermark is None or b.last_modified > watermark - lookback) and seen_key(b) not in seen
        ),
        key=lambda b: (b.last_modified, b.name),
    )
    if len(fresh) > limit:
        notes.append(f"{what}: {len(fresh)} new blobs; requesting the oldest {limit} now, the rest next tick")
        fresh = fresh[:limit]
    planned: list[PlannedRun] = []
    if fresh:
        try:
            resolved = resolve_contract(stores, definition)
        except StoreError as exc:
            # Not marked as seen: once the contract exists again these blobs still run.
            warnings.append(f"{what}: {len(fresh)} new blob(s) not run: {redact(str(exc))}")
            return [], state
        for blob in fresh:
            request = resolved.request(
                TriggerType.EXTERNAL_EVENT.value,
                blob_uri=blob.uri,
                blob_etag=blob.etag,
                blob_container=blob.container,
                blob_name=blob.name,
            )
            planned.append(
                PlannedRun(
                    blob_run_key(tenant, environment, definition.job_definition_id, blob, scope), request
                )
            )
            seen[seen_key(blob)] = _iso(blob.last_modified)
            if watermark is None or blob.last_modified > watermark:
                watermark = blob.last_modified
    if watermark is not None:
        floor = watermark - lookback
        seen = {k: v for k, v in seen.items() if (_parse_iso(v) or floor) >= floor}
    return planned, {
        "f": signature,
        "wm": _iso(watermark) if watermark else None,
        "seen": dict(sorted(seen.items())),
    }


@dataclass(frozen=True)
class BlobSource:
    """Where a tenant's event blobs live and how to reach them; holds no secret, only the name of
    the environment variable with the connection string (read when a tick or run connects).

    ``connection_string_env`` wins when that variable is set; otherwise ``account_url`` with
    ``DefaultAzureCredential`` (managed identity, workload identity, Azure CLI). ``containers``
    lists the containers this source may be used for (``None``: any): a job definition of a tenant
    naming another container is skipped, so no tenant can make the sensor read another's data.
    """

    connection_string_env: str | None = "AZURE_STORAGE_CONNECTION_STRING"
    account_url: str | None = None
    containers: tuple[str, ...] | None = None
    timeout_seconds: int = 20

    def allows(self, container: str) -> bool:
        return self.containers is None or container in self.containers

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            # Fail fast: the SDK's storage retry policy waits 15 s before its first retry (about a
            # minute with its defaults), longer than a sensor tick may take. A failed listing is
            # simply tried again at the next tick.
            "retry_total": 0,
            "connection_timeout": self.timeout_seconds,
            "read_timeout": self.timeout_seconds,
        }
        connection_string = os.environ.get(self.connection_string_env) if self.connection_string_env else None
        if connection_string:
            options["connection_string"] = connection_string
        elif self.account_url:
            options["account_url"] = self.account_url
        else:
            raise InvalidArtifactError(
                f"no blob account: set {self.connection_string_env or 'a connection string variable'} "
                "or give BlobSource(account_url=...)",
                field="connection_string_env",
            )
        return options

    def connect(self, container: str) -> BlobConnection:
        """A ``dq_stores.blob_client.BlobConnection`` to ``container`` (close it when done)."""
        from dq_stores.blob_client import connect_container

        return connect_container(container=container, **self._options())

    def read(
        self,
        uri: str,
        *,
        etag: str | None = None,
        fmt: Literal["csv", "parquet"] | None = None,
        **csv_options: Any,
    ) -> pl.DataFrame:
        """``read_raw_blob`` with this source's credentials."""
        return read_raw_blob(uri, self, etag=etag, fmt=fmt, **csv_options)


def _list_with(connection: BlobConnection, container: str, prefix: str) -> Iterator[BlobItem]:
    from dq_stores.blob_client import azure_errors

    base = connection.base_url
    with azure_errors(f"list blobs under {prefix!r}", location=connection.display):
        for props in connection.container.list_blobs(name_starts_with=prefix or None):
            modified = props.last_modified
            if modified is None:
                continue
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            yield BlobItem(
                container=container,
                name=str(props.name),
                etag=str(props.etag).strip('"'),
                last_modified=modified.astimezone(UTC),
                uri=f"{base}/{quote(str(props.name), safe='/~')}",
            )


def read_raw_blob(
    uri: str,
    credentials: BlobSource | str | None = None,
    *,
    etag: str | None = None,
    fmt: Literal["csv", "parquet"] | None = None,
    **csv_options: Any,
) -> pl.DataFrame:
    """Read the blob at ``uri`` (a URI the blob sensor put in ``dq/blob_uri``) into a polars frame.

    ``credentials``: a ``BlobSource``, a connection string, or ``None`` for
    ``BlobSource()`` (``AZURE_STORAGE_CONNECTION_STRING``). ``etag`` makes the read fail with
    ``ConflictError`` if the blob changed since the sensor saw it (so a run reads exactly the
    content it was started for). The format comes from ``fmt``, else the name (``.csv``,
    ``.csv.gz``, ``.parquet``, ``.pq``), else the blob's content type. ``csv_options`` go to
    ``polars.read_csv``. The blob is read whole into memory.
    """
    import polars as pl
    from azure.core import MatchConditions

    from dq_stores.blob_client import azure_errors

    source = credentials if isinstance(credentials, BlobSource) else BlobSource()
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidArtifactError(
            f"blob URI must be an http(s) URL, got {redact(uri)[:200]!r}", field="blob_uri"
        )
    if parts.query:
        raise InvalidArtifactError(
            "blob URI must not carry a query (a SAS token belongs in the credentials)", field="blob_uri"
        )
    options = source._options() if not isinstance(credentials, str) else {"connection_string": credentials}
    # The container is the first path segment after the account endpoint (which for the emulator
    # carries the account name in its path).
    from azure.storage.blob import BlobServiceClient

    with azure_errors("open blob service"):
        if "connection_string" in options:
            service = BlobServiceClient.from_connection_string(options["connection_string"], retry_total=2)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(
                str(options["account_url"]), credential=DefaultAzureCredential(), retry_total=2
            )
    with service:
        endpoint = urlsplit(service.url)
        base_path = endpoint.path.rstrip("/") + "/"
        if (parts.scheme, parts.netloc) != (endpoint.scheme, endpoint.netloc) or not parts.path.startswith(
            base_path
        ):
            raise InvalidArtifactError(
                f"blob {parts.netloc}{parts.path[:120]} is not in the account these credentials open",
                field="blob_uri",
            )
        container, _, name = unquote(parts.path[len(base_path) :]).partition("/")
        if not container or not name:
            raise InvalidArtifactError("blob URI must name a container and a blob", field="blob_uri")
        if isinstance(credentials, BlobSource) and not credentials.allows(container):
            raise InvalidArtifactError(
                f"container {container!r} is not one this source may read", field="blob_uri"
            )
        blob = service.get_blob_client(container, name)
        with azure_errors(f"read blob {name}", location=f"{endpoint.netloc}/{container}"):
            if etag:
                downloader = blob.download_blob(
                    etag=f'"{etag.strip(chr(34))}"', match_condition=MatchConditions.IfNotModified
                )
            else:
                downloader = blob.download_blob()
            data = downloader.readall()
            content_type = (downloader.properties.content_settings.content_type or "").lower()
    kind = fmt or _blob_format(name, content_type)
    try:
        if kind == "parquet":
            return pl.read_parquet(io.BytesIO(data))
        return pl.read_csv(io.BytesIO(data), **csv_options)
    except pl.exceptions.PolarsError as exc:
        raise InvalidArtifactError(f"blob {name} is not readable as {kind}: {exc}", field="blob_uri") from exc


def _blob_format(name: str, content_type: str) -> Literal["csv", "parquet"]:
    lowered = name.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if "parquet" in content_type:
        return "parquet"
    if "csv" in content_type:
        return "csv"
    raise InvalidArtifactError(
        f"cannot tell the format of blob {name}: pass fmt='csv' or 'parquet'", field="fmt"
    )
