"""The conformance suite of payload stores (``dq_stores.results.payloads.PayloadStore``): the same
tests for the file, memory and Azure Blob stores, and for any third-party one.

Like ``StoreConformance``: subclass ``PayloadStoreConformance`` and override the ``payload_store``
fixture (an empty store, or one shared by tests: keys carry a unique prefix)::

    class TestFilePayloads(PayloadStoreConformance):
        @pytest.fixture
        def payload_store(self, tmp_path):
            return FilePayloadStore(tmp_path)
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from dq_stores.errors import InvalidArtifactError, NotFoundError
from dq_stores.results.payloads import CHUNK_SIZE, PayloadStore, result_key
from dq_stores.scope import Scope
from dq_stores.testing.builders import unique_id

__all__ = ["PayloadStoreConformance"]


class PayloadStoreConformance:
    """Every rule of a payload store. Subclass it and override ``payload_store``."""

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    @pytest.fixture
    def payload_store(self) -> PayloadStore:
        pytest.fail(f"{type(self).__name__} must override the `payload_store` fixture", pytrace=False)

    @pytest.fixture
    def prefix(self) -> str:
        """A key prefix no other test uses."""
        return f"{unique_id('ns')}/"

    def _key(self, prefix: str, job_id: str = "r1", body: bytes = b"") -> str:
        return prefix + result_key(
            Scope("t", "dev"), job_id, hashlib.sha256(body).hexdigest(), "application/json"
        )

    def test_bytes_round_trip_with_hash_size_and_uri(self, payload_store: PayloadStore, prefix: str) -> None:
        body = b'{"rows": 3}'
        key = self._key(prefix, body=body)
        info = payload_store.write(key, body, content_type="application/json")
        assert info.size_bytes == len(body)
        assert info.sha256 == hashlib.sha256(body).hexdigest()
        assert payload_store.owns(info.uri)
        assert payload_store.key_of(info.uri) == key
        assert b"".join(payload_store.read_chunks(info.uri)) == body
        assert "sig=" not in payload_store.location
        assert "AccountKey" not in payload_store.location

    def test_streams_and_files_are_written_whole_in_chunks(
        self, payload_store: PayloadStore, prefix: str
    ) -> None:
        big = bytes(range(256)) * ((CHUNK_SIZE * 2 + 1000) // 256)
        pieces = (big[i : i + 100_000] for i in range(0, len(big), 100_000))
        info = payload_store.write(
            self._key(prefix, "stream"), pieces, content_type="application/octet-stream"
        )
        assert info.size_bytes == len(big)
        assert info.sha256 == hashlib.sha256(big).hexdigest()
        chunks = list(payload_store.read_chunks(info.uri))
        assert len(chunks) >= 2
        assert b"".join(chunks) == big
        from_file = payload_store.write(
            self._key(prefix, "file"), io.BytesIO(b"abc"), content_type="text/csv"
        )
        assert b"".join(payload_store.read_chunks(from_file.uri)) == b"abc"
        empty = payload_store.write(self._key(prefix, "empty"), b"", content_type="text/csv")
        assert empty.size_bytes == 0
        assert b"".join(payload_store.read_chunks(empty.uri)) == b""

    def test_a_failed_stream_leaves_no_payload(self, payload_store: PayloadStore, prefix: str) -> None:
        def broken() -> Iterator[bytes]:
            yield b"x" * 1000
            raise RuntimeError("the source failed mid-stream")

        key = self._key(prefix, "broken")
        with pytest.raises(RuntimeError, match="mid-stream"):
            payload_store.write(key, broken(), content_type="text/csv")
        assert [p.key for p in payload_store.list(prefix) if not p.key.endswith(".part")] == []

    def test_overwrite_list_and_delete(self, payload_store: PayloadStore, prefix: str) -> None:
        keys = [self._key(prefix, f"r{i}") for i in range(3)]
        infos = [
            payload_store.write(k, f"v{i}".encode(), content_type="text/csv") for i, k in enumerate(keys)
        ]
        again = payload_store.write(keys[0], b"v0-new", content_type="text/csv")
        assert again.uri == infos[0].uri
        assert b"".join(payload_store.read_chunks(again.uri)) == b"v0-new"
        listed = sorted(payload_store.list(prefix), key=lambda p: p.key)
        assert [p.key for p in listed] == sorted(keys)
        assert [p.size_bytes for p in listed] == [6, 2, 2]
        assert all(p.modified is not None for p in listed)
        assert [p.key for p in payload_store.list(prefix + "t/dev/job_runs/r1/")] == [keys[1]]
        assert payload_store.delete(infos[1].uri) is True
        assert payload_store.delete(infos[1].uri) is False
        with pytest.raises(NotFoundError):
            b"".join(payload_store.read_chunks(infos[1].uri))
        assert sorted(p.key for p in payload_store.list(prefix)) == sorted([keys[0], keys[2]])

    def test_foreign_uris_and_bad_keys_are_refused(self, payload_store: PayloadStore, prefix: str) -> None:
        for foreign in ("file:///etc/passwd", "https://example.com/x", "memory://elsewhere/x"):
            if payload_store.owns(foreign):
                continue
            with pytest.raises(InvalidArtifactError):
                payload_store.key_of(foreign)
        for bad in ("", "/abs/key", "a/../../escape", "a//b"):
            with pytest.raises(InvalidArtifactError):
                payload_store.write(bad, b"x", content_type="text/csv")
