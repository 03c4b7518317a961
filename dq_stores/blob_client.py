"""Connecting to Azure Blob Storage and translating its errors: shared by the Blob stores
(``dq_stores.blob``) and the Blob result-payload store.

What lives here: parsing an ``azure-blob://`` URL (and the ``connection_string=`` /
``account_url=`` / ``credential=`` options) into one ``ContainerClient``, resolving credentials
(connection string, account key, SAS token, ``DefaultAzureCredential``), translating Azure SDK
exceptions into ``dq_stores.errors`` classes, and scrubbing secrets from exceptions kept as a
``__cause__``. What must not: store logic or blob layout (see ``dq_stores.blob``). This module
imports the Azure SDK at the top; only ``dq_stores.blob`` (itself imported only when an
``azure-blob://`` URL is opened) may import it.

URL forms (the part after the container is an optional blob-name prefix)::

    azure-blob://<container>[/<prefix>]
        account from connection_string= / account_url= (kwargs), else the connection string in
        the environment variable named by ?connection_string_env= (default
        AZURE_STORAGE_CONNECTION_STRING)
    azure-blob://<account>.blob.core.windows.net/<container>[/<prefix>]     (any host with a dot)
    azure-blob://<ip-or-localhost>:<port>/<account>/<container>[/<prefix>]   (emulator, http)

Credentials for the host forms, first found wins: ``credential=`` kwarg (account key string, SAS
string, or any Azure credential object), ``?account_key_env=VAR`` / ``?sas_token_env=VAR``, a SAS
token in the URL query (``?sv=...&sig=...``), the environment variables AZURE_STORAGE_SAS_TOKEN
then AZURE_STORAGE_KEY, and finally ``DefaultAzureCredential`` (managed identity, workload
identity, Azure CLI login; also forced with ``?credential=default``).

Other options (URL query or kwargs; kwargs win): ``create_container`` (bool, default false),
``secure`` (https; default true except for the emulator form), ``retry_budget`` (seconds: give up
on an unreachable account after about that long; the CLI sets 10), ``retry_total``,
``connection_timeout``, ``read_timeout``, ``max_workers`` (parallel downloads, default 8), and the
kwargs-only ``service_client=`` (an existing ``BlobServiceClient``, e.g. from dagster-azure's
``AzureBlobStorageResource``; not closed by us) and ``client_kwargs=`` (passed to the client).
No secret ever reaches a message, a repr or a log line: locations are shown as
``azure-blob://<account>/<container>/<prefix>``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    NotFoundError,
    StoreError,
    StoreNotFoundError,
)
from dq_stores.secrets import redact

__all__ = [
    "BlobConnection",
    "BlobLocation",
    "azure_errors",
    "connect_container",
    "error_code",
    "parse_blob_url",
    "scrub_exception",
    "translate_azure_error",
]

SCHEME = "azure-blob"
CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
_CONTAINER_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# Query options that are ours; anything else is refused unless the query carries a SAS token.
_OPTIONS = frozenset(
    {
        "connection_string_env",
        "account_key_env",
        "sas_token_env",
        "credential",
        "account_name",
        "create_container",
        "secure",
        "retry_total",
        "retry_budget",
        "connection_timeout",
        "read_timeout",
        "max_workers",
    }
)


class _RedactRecords(logging.Filter):
    """urllib3 logs every request line, query string included, at DEBUG: a SAS ``sig=`` would
    reach the logs. Redact the message in place (the record still gets logged).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _name in ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy"):
    logging.getLogger(_name).addFilter(_RedactRecords())


# -- the URL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobLocation:
    """A parsed ``azure-blob://`` URL. Holds no secret (a SAS token in the URL is kept apart, in
    ``sas_token``, which is excluded from the repr).
    """

    container: str
    prefix: str
    """Blob-name prefix without leading/trailing slash; ``""`` for the container root."""
    account_url: str | None = None
    """``https://<account>.blob.core.windows.net`` for the host forms; ``None`` for the
    container-only form (account from a connection string)."""
    account_name: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sas_token: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The location as an ``azure-blob://`` URL naming the host (and port) it talks to:
        ``azure-blob://<account>.blob.core.windows.net/<container>/<prefix>``, or
        ``azure-blob://127.0.0.1:10000/<account>/<container>`` for the emulator. No secret.
        """
        tail = f"/{self.prefix}" if self.prefix else ""
        if self.account_url:
            parts = urlsplit(self.account_url)
            path = parts.path.strip("/")
            base = f"{parts.netloc}/{path}" if path else parts.netloc
            return f"{SCHEME}://{base}/{self.container}{tail}"
        account = self.account_name or "<connection-string account>"
        return f"{SCHEME}://{account}/{self.container}{tail}"


def _is_emulator_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _bool(value: str | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidArtifactError(f"option {name} must be true or false, got {value!r}", field=name)


def _int(value: Any, name: str) -> int:
    try:
        result = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArtifactError(f"option {name} must be an integer", field=name) from exc
    if result < 0:
        raise InvalidArtifactError(f"option {name} must be >= 0", field=name)
    return result


def check_container_name(name: str) -> str:
    if _CONTAINER_RE.fullmatch(name) is None:
        raise InvalidArtifactError(
            f"container name {name[:70]!r} is not valid: 3-63 lowercase letters, digits and single hyphens",
            field="url",
        )
    return name


def parse_blob_url(url: str) -> BlobLocation:
    """Parse an ``azure-blob://`` URL (see the module docstring); raises ``InvalidArtifactError``
    naming the problem (never echoing a secret).
    """
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise InvalidArtifactError(f"not an {SCHEME}:// URL: {redact(url)!r}", field="url")
    if parts.username or parts.password:
        raise InvalidArtifactError(
            "put no credential in the URL's user/password part; use credential= or an *_env option",
            field="url",
        )
    netloc = parts.netloc
    segments = [unquote(s) for s in parts.path.split("/") if s]
    account_url: str | None = None
    account_name: str | None = None
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in _OPTIONS}
    for name in ("create_container", "secure"):
        if name in options:
            _bool(options[name], name)
    for name in ("retry_total", "retry_budget", "connection_timeout", "read_timeout", "max_workers"):
        if name in options:
            _int(options[name], name)
    unknown = [k for k, _ in query if k not in _OPTIONS]
    sas_token: str | None = None
    if unknown:
        if "sig" not in unknown:
            raise InvalidArtifactError(
                f"unknown {SCHEME} URL option(s) {sorted(set(unknown))}; known: {sorted(_OPTIONS)}",
                field="url",
            )
        # A SAS URL pasted as is: everything that is not one of our options is the token.
        raw = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in _OPTIONS]
        sas_token = "&".join(raw)
    if not netloc:
        raise InvalidArtifactError(f"{SCHEME} URL needs a container or a host: {redact(url)!r}", field="url")
    host = parts.hostname or ""
    if "." in netloc or ":" in netloc:
        secure_default = True
        if _is_emulator_host(host):
            # Emulator / path-style: http://127.0.0.1:10000/<account>
            if not segments:
                raise InvalidArtifactError(
                    f"{SCHEME} URL with an emulator host needs /<account>/<container>", field="url"
                )
            account_name = segments.pop(0)
            secure_default = False
            base = f"{netloc}/{account_name}"
        else:
            account_name = options.get("account_name") or host.split(".", 1)[0]
            base = netloc
        secure = _bool(options.get("secure", str(secure_default)), "secure")
        account_url = f"{'https' if secure else 'http'}://{base}"
        if not segments:
            raise InvalidArtifactError(f"{SCHEME} URL needs a container after the host", field="url")
        container = segments.pop(0)
    else:
        container = netloc
        if "account_name" in options:
            account_name = options["account_name"]
    check_container_name(container)
    prefix = "/".join(segments)
    if len(prefix) > 256:
        raise InvalidArtifactError("blob prefix is longer than 256 characters", field="url")
    if any(s in {".", ".."} or s.endswith(".") for s in segments):
        raise InvalidArtifactError("blob prefix segments may not be '.', '..' or end with '.'", field="url")
    return BlobLocation(container, prefix, account_url, account_name, options, sas_token)


# -- the connection -------------------------------------------------------------------------------


@dataclass
class BlobConnection:
    """One container client and what closes it; shared by every store opened together."""

    container: ContainerClient
    location: BlobLocation
    options: dict[str, Any]
    """Resolved options that are not the client's (``create_container``, ``max_workers``)."""
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def prefix(self) -> str:
        """The blob-name prefix with a trailing slash, or ``""``."""
        return f"{self.location.prefix}/" if self.location.prefix else ""

    @property
    def display(self) -> str:
        return self.location.display

    @property
    def base_url(self) -> str:
        """``<scheme>://<host>/<container>`` without any query (so without a SAS token)."""
        parts = urlsplit(self.container.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()

    def __repr__(self) -> str:
        return f"BlobConnection({self.display!r})"


def _credential_from_string(value: str, account_name: str | None) -> Any:
    text = value.strip()
    if "sig=" in text:
        return AzureSasCredential(text.lstrip("?"))
    if not account_name:
        raise InvalidArtifactError(
            "an account key needs the account name (use the <account>.blob.core.windows.net URL form "
            "or ?account_name=)",
            field="credential",
        )
    return AzureNamedKeyCredential(account_name, text)


def _env(name: str, option: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise InvalidArtifactError(f"environment variable {name} (from {option}) is not set", field=option)
    return value


def _resolve_credential(
    location: BlobLocation, options: Mapping[str, Any]
) -> tuple[Any, Callable[[], None] | None]:
    """The credential for a host-form URL, and a closer if we created a closable one."""
    account = location.account_name
    if options.get("credential") is not None and options["credential"] != "default":
        cred = options["credential"]
        return (_credential_from_string(cred, account) if isinstance(cred, str) else cred), None
    if options.get("credential") != "default":
        if options.get("account_key_env"):
            return _credential_from_string(_env(options["account_key_env"], "account_key_env"), account), None
        if options.get("sas_token_env"):
            return AzureSasCredential(_env(options["sas_token_env"], "sas_token_env").lstrip("?")), None
        if location.sas_token:
            return AzureSasCredential(location.sas_token), None
        if os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
            return AzureSasCredential(os.environ["AZURE_STORAGE_SAS_TOKEN"].lstrip("?")), None
        if os.environ.get("AZURE_STORAGE_KEY") and account:
            return AzureNamedKeyCredential(account, os.environ["AZURE_STORAGE_KEY"]), None
    if location.account_url is not None and not location.account_url.startswith("https://"):
        # DefaultAzureCredential needs https; the emulator (http) takes its well-known account key.
        raise InvalidArtifactError(
            f"no credential for {location.display}: set AZURE_STORAGE_KEY to the account key (for "
            "Azurite, its well-known devstoreaccount1 key), or AZURE_STORAGE_SAS_TOKEN, or pass "
            "?account_key_env=VAR / connection_string=",
            field="credential",
        )
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - azure-identity ships in the same extra
        raise InvalidArtifactError(
            "no credential given and azure-identity is not installed (pip install 'dq-stores[azure]')",
            field="credential",
        ) from exc
    credential = DefaultAzureCredential()
    return credential, credential.close


def connect_container(url: str | None = None, **options: Any) -> BlobConnection:
    """Open the container of an ``azure-blob://`` URL (see the module docstring for the forms and
    options). Nothing is sent to Azure unless ``create_container`` is true.

    ``url`` may be omitted when ``container=`` (and ``prefix=``) come as options together with a
    ``connection_string=``, ``account_url=`` or ``service_client=``.
    """
    if url is not None:
        location = parse_blob_url(url)
    else:
        container = options.pop("container", None)
        if not isinstance(container, str):
            raise InvalidArtifactError("give an azure-blob:// URL or container=", field="container")
        location = BlobLocation(
            check_container_name(container), str(options.pop("prefix", "") or "").strip("/")
        )
    merged: dict[str, Any] = {**location.options, **options}
    unknown = (
        set(options)
        - _OPTIONS
        - {
            "connection_string",
            "account_url",
            "service_client",
            "client_kwargs",
            "credential",
        }
    )
    if unknown:
        raise InvalidArtifactError(f"unknown {SCHEME} option(s) {sorted(unknown)}", field=sorted(unknown)[0])
    client_kwargs: dict[str, Any] = dict(merged.get("client_kwargs") or {})
    client_kwargs.setdefault("user_agent", "dq-stores")
    if merged.get("retry_budget") is not None:
        client_kwargs.update(_budgeted_retries(_int(merged["retry_budget"], "retry_budget")))
    for name in ("retry_total", "connection_timeout", "read_timeout"):
        if merged.get(name) is not None:
            client_kwargs[name] = _int(merged[name], name)
    resolved: dict[str, Any] = {
        "create_container": _bool(merged.get("create_container", False), "create_container"),
        "max_workers": max(1, _int(merged.get("max_workers", 8), "max_workers")),
    }
    closers: list[Callable[[], None]] = []
    try:
        service = _service_client(location, merged, client_kwargs, closers)
    except InvalidArtifactError:
        raise
    except ValueError as exc:
        # The SDK's own parse errors can quote the connection string: never pass them on.
        raise InvalidArtifactError(
            f"cannot build an Azure Blob client for {location.display}: malformed connection string, "
            "account URL or credential",
            field="connection_string",
        ) from scrub_exception(exc)
    account_name = location.account_name or service.account_name
    service_url = urlsplit(service.url)  # without its query: a SAS token would be in it
    location = BlobLocation(
        location.container,
        location.prefix,
        f"{service_url.scheme}://{service_url.netloc}{service_url.path}".rstrip("/"),
        account_name,
        location.options,
    )
    container = service.get_container_client(location.container)
    connection = BlobConnection(container, location, resolved, closers)
    if resolved["create_container"]:
        try:
            with azure_errors(f"create container {location.display}"), suppress(ResourceExistsError):
                container.create_container()
        except BaseException:
            connection.close()
            raise
    return connection


def _budgeted_retries(seconds: int) -> dict[str, Any]:
    """Client settings that give up on an unreachable or failing account after about
    ``seconds``: two retries 1 s and 3 s apart (the SDK's default waits 15, 18 and 24 s), and a
    connection timeout of a quarter of the budget. A command-line tool fails within the budget;
    a long-running service keeps the SDK's patient default (no budget).
    """
    if seconds <= 0:
        return {"retry_total": 0, "connection_timeout": 5}
    return {
        "retry_total": 2,
        "initial_backoff": 1,
        "increment_base": 2,
        "random_jitter_range": 0.5,
        "connection_timeout": max(1, seconds // 4),
        "read_timeout": max(5, seconds * 3),
    }


def _service_client(
    location: BlobLocation,
    options: Mapping[str, Any],
    client_kwargs: dict[str, Any],
    closers: list[Callable[[], None]],
) -> BlobServiceClient:
    given = options.get("service_client")
    if given is not None:
        if not isinstance(given, BlobServiceClient):
            raise InvalidArtifactError(
                "service_client must be an azure BlobServiceClient", field="service_client"
            )
        return given  # the caller owns it and closes it
    connection_string = options.get("connection_string")
    account_url = options.get("account_url")
    if location.account_url is None and account_url is None and connection_string is None:
        env_name = str(options.get("connection_string_env") or CONNECTION_STRING_ENV)
        connection_string = os.environ.get(env_name)
        if not connection_string:
            raise InvalidArtifactError(
                f"no Azure Storage account for {location.display}: pass connection_string= or "
                f"account_url=, set {env_name}, or use the azure-blob://<account>.blob.core.windows.net/"
                "<container> URL form",
                field="connection_string",
            )
    if connection_string is not None:
        service = BlobServiceClient.from_connection_string(str(connection_string), **client_kwargs)
    else:
        if account_url is not None:
            location = BlobLocation(
                location.container,
                location.prefix,
                str(account_url).rstrip("/"),
                location.account_name or urlsplit(str(account_url)).hostname,
                location.options,
                location.sas_token,
            )
        assert location.account_url is not None
        credential, close_credential = _resolve_credential(location, options)
        if close_credential is not None:
            closers.append(close_credential)
        service = BlobServiceClient(location.account_url, credential=credential, **client_kwargs)
    closers.append(service.close)
    return service


# -- errors ---------------------------------------------------------------------------------------


def error_code(exc: BaseException) -> str:
    """The storage error code (``BlobNotFound``, ``ConditionNotMet``, ...) or ``""``."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def scrub_exception(exc: BaseException) -> BaseException:
    """Redact secrets (SAS signatures, keys) from ``exc`` and its chain, in place, and return it.

    Transport errors quote the request URL, which carries a SAS token when one is used; we keep
    the SDK exception as ``__cause__`` (for debugging) but not the secret in it.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
            message = getattr(current, "message", None)
            if isinstance(message, str):
                current.message = redact(message)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
            pass
        inner = getattr(current, "inner_exception", None)
        todo.extend([current.__cause__, current.__context__])
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        if isinstance(inner, BaseException):
            todo.append(inner)
        for attr in ("reason", "original_error"):
            value = getattr(current, attr, None)
            if isinstance(value, BaseException):
                todo.append(value)
    return exc


def translate_azure_error(exc: AzureError, what: str, *, location: str = "") -> StoreError:
    """The ``dq_stores.errors`` class for an Azure SDK error; the message names ``what`` (a blob
    name or an operation, never a secret) and the storage error code, never the SDK's text.
    """
    code = error_code(exc)
    where = f" ({location})" if location else ""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ResourceModifiedError) or status == 412:
        return ConflictError(f"{what}: changed by another writer (etag no longer matches){where}")
    if code == "ContainerNotFound":
        return StoreNotFoundError(
            f"{what}: the container does not exist{where}; create it or open with create_container=true"
        )
    if code == "ContainerBeingDeleted":
        return BackendUnavailableError(f"{what}: the container is being deleted{where}")
    if isinstance(exc, ResourceExistsError) or status == 409:
        return ConflictError(f"{what}: already exists or was changed concurrently ({code or status}){where}")
    if isinstance(exc, ResourceNotFoundError):
        return NotFoundError(f"{what}: not found{where}")
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return BackendUnavailableError(
            f"{what}: access denied by Azure Blob Storage ({code or status}){where}; check the credential "
            "and its permissions"
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return BackendUnavailableError(
            f"{what}: Azure Blob Storage is unreachable ({type(exc).__name__}){where}"
        )
    if isinstance(exc, HttpResponseError):
        return BackendUnavailableError(f"{what}: Azure Blob Storage answered {status} {code}{where}".rstrip())
    return BackendUnavailableError(f"{what}: Azure SDK error {type(exc).__name__}{where}")


@contextmanager
def azure_errors(what: str, *, location: str = "") -> Iterator[None]:
    """Translate any Azure SDK error raised inside into a ``StoreError`` (``raise ... from``)."""
    try:
        yield
    except AzureError as exc:
        raise translate_azure_error(exc, what, location=location) from scrub_exception(exc)
