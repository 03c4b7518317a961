"""Payloads as files under a root folder (``file://`` results locations).

Each payload is written to a temp file in its final folder, fsynced and renamed into place
(``dq_stores.fsio.atomic_write_stream``), so it is complete or absent. Keys are the claim check's
(``dq_stores.results.payloads.result_key``); URIs are ``file://`` URLs under the root.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from dq_stores.errors import BackendUnavailableError, InvalidArtifactError, NotFoundError
from dq_stores.fsio import atomic_write_stream
from dq_stores.results.payloads import PayloadInfo, PayloadListing, PayloadStore, iter_chunks

__all__ = ["FilePayloadStore", "open_file_payloads"]


def _hashing(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        if digest is not None:
            digest.update(chunk)
        yield chunk


class FilePayloadStore(PayloadStore):
    """Payloads as files under a root folder: temp file in the same folder, fsync, rename.

    A temp file is named ``<final name>.<random>.part``: a writer killed mid-write leaves it
    behind, and since its name starts like a payload's, ``list`` yields it and ``gc_payloads``
    collects it (no record ever points at it) once it is older than the grace period.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"FilePayloadStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        segments = key.split("/")
        if not key or key.startswith("/") or "\\" in key or any(s in {"", ".", ".."} for s in segments):
            raise InvalidArtifactError(f"payload key {key[:80]!r} is not a relative path", field="key")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidArtifactError(f"payload key {key!r} escapes the results root", field="key")
        return path

    @property
    def location(self) -> str:
        return self.root.as_uri()

    def key_of(self, uri: str) -> str:
        if not self.owns(uri):
            raise InvalidArtifactError(f"{uri!r} is not a payload of {self!r}", field="uri")
        path = Path(unquote(urlsplit(uri).path)).resolve()
        return path.relative_to(self.root).as_posix()

    def owns(self, uri: str) -> bool:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            return False
        return Path(unquote(parts.path)).resolve().is_relative_to(self.root)

    def write(
        self,
        key: str,
        data: bytes | Iterable[bytes] | BinaryIO,
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> PayloadInfo:
        path = self._path(key)
        known = sha256 if isinstance(data, bytes) else None
        digest = hashlib.sha256()
        # The temp file is named like the payload (``<name>.<random>.part``): a writer killed
        # mid-write leaves it where ``list`` yields it, so ``gc_payloads`` collects it.
        try:
            size = atomic_write_stream(
                path,
                _hashing(iter_chunks(data), None if known else digest),
                temp_name=lambda name: f"{name}.{secrets.token_hex(6)}.part",
            )
        except OSError as exc:
            raise BackendUnavailableError(f"cannot write payload {key}: {exc.strerror}") from exc
        return PayloadInfo(path.as_uri(), known or digest.hexdigest(), size)

    def read_chunks(self, uri: str) -> Iterator[bytes]:
        path = self._path(self.key_of(uri))
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"payload {self.key_of(uri)} is missing from {self.root}") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"cannot read payload: {exc.strerror}") from exc
        with handle:
            yield from iter_chunks(handle)

    def delete(self, uri: str) -> bool:
        path = self._path(self.key_of(uri))
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendUnavailableError(f"cannot delete payload: {exc.strerror}") from exc
        return True

    def list(self, prefix: str = "") -> Iterator[PayloadListing]:
        """Payloads, and leftovers of interrupted writes (``*.part``, for ``gc_payloads``)."""
        # Start below the prefix's folder part: a namespace prefix never walks other stores'.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("result-*")):
            if not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                yield PayloadListing(
                    path.as_uri(), key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)
                )


def open_file_payloads(url: str, **options: Any) -> FilePayloadStore:
    """``file:///abs/dir`` or ``file://rel/dir``; no options."""
    if options:
        name = sorted(options)[0]
        raise InvalidArtifactError(f"unknown option {name!r} for a file:// results location", field=name)
    parts = urlsplit(url)
    path = unquote((parts.netloc + parts.path) if parts.netloc else parts.path)
    if not path:
        raise InvalidArtifactError("a file:// results location needs a folder", field="results_url")
    return FilePayloadStore(path)
