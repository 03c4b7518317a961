"""Azure SDK errors, translated: the ``dq_stores.errors`` class for every storage failure, and
secrets scrubbed from the SDK exceptions kept as a ``__cause__``.

What lives here: ``error_code`` (the storage error code of an exception), ``scrub_exception``,
``translate_azure_error`` and the ``azure_errors`` context manager. What must not: connecting,
URLs or credentials (``dq_stores.blob.client``), store logic. Messages name what was being done
(a blob name or an operation) and where (``azure-blob://<account>/<container>``), never the
SDK's own text, which can quote a SAS token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    StoreError,
    StoreNotFoundError,
)
from dq_stores.secrets import redact

__all__ = ["azure_errors", "blob_missing", "error_code", "scrub_exception", "translate_azure_error"]


def error_code(exc: BaseException) -> str:
    """The storage error code (``BlobNotFound``, ``ConditionNotMet``, ...) or ``""``."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def blob_missing(exc: BaseException) -> bool:
    """The blob (not its container) does not exist: an answer to a read or delete, not a failure.
    A missing container is a failure (``StoreNotFoundError`` from ``translate_azure_error``).
    """
    return isinstance(exc, ResourceNotFoundError) and error_code(exc) != "ContainerNotFound"


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
