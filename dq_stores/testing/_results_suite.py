"""Conformance tests of the claim check (``JobRunStore.put_result`` ... ``gc_payloads``): inline
and offloaded results, streams, integrity errors, garbage collection within the store's own
namespace, deletes with the result, and run + result written as one item.

This module holds tests only; the fixtures they use (``stores``, ``tenant``) are defined by
``StoreConformance``. The suite needs a results location: every backend's fixture opens one (a
backend that keeps everything inline would declare so; none does).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dq_stores.errors import (
    ConflictError,
    InvalidArtifactError,
    NotFoundError,
    PayloadIntegrityError,
)
from dq_stores.models import ValidationReport
from dq_stores.results.payloads import parse_result_key
from dq_stores.stores import Stores
from dq_stores.testing.builders import BASE_TIME, make_run

ENV = "dev"
BIG = 300 * 1024


def _payload(seed: int, size: int = BIG) -> bytes:
    return (f"{seed:08d}".encode() * (size // 8 + 1))[:size]


def _require_location(stores: Stores) -> None:
    if stores.job_runs.payloads is None:
        pytest.fail(
            f"{stores!r} has no results location: the conformance fixture must open one", pytrace=False
        )


class ResultTests:
    def test_small_result_inline_or_offloaded_round_trips(self, stores: Stores, tenant: str) -> None:
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1", submitted_at=BASE_TIME))
        report = ValidationReport(status="passed", row_count=3, pass_rate=1.0)
        ref = runs.put_result(tenant, ENV, "r1", report)
        assert ref.result_type == "validation"
        assert ref.location == ("inline" if runs.supports_inline_results else "external")
        assert runs.get_result_model(tenant, ENV, "r1") == report
        stored = runs.get(tenant, ENV, "r1")
        assert stored is not None
        assert stored.result == ref
        assert b"".join(runs.iter_result(tenant, ENV, "r1")) == runs.get_result(tenant, ENV, "r1")

    def test_large_result_is_offloaded_into_the_stores_own_namespace(
        self, stores: Stores, tenant: str
    ) -> None:
        _require_location(stores)
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1", submitted_at=BASE_TIME))
        data = _payload(1)
        ref = runs.put_result(tenant, ENV, "r1", data, content_type="application/vnd.apache.parquet")
        assert ref.location == "external"
        assert ref.uri is not None
        assert ref.size_bytes == len(data)
        payloads = runs.payloads
        assert payloads is not None
        assert payloads.owns(ref.uri)
        key = payloads.key_of(ref.uri)
        store_id = runs.store_id()
        assert store_id is not None
        assert parse_result_key(key, store_id) is not None
        assert key.endswith(".parquet")
        assert runs.get_result(tenant, ENV, "r1") == data

    def test_streamed_result_and_forced_placement(self, stores: Stores, tenant: str) -> None:
        _require_location(stores)
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1", submitted_at=BASE_TIME))
        chunks = [b"a" * 1000, b"b" * 70_000, b"c" * 5]
        ref = runs.put_result(tenant, ENV, "r1", iter(chunks), content_type="text/csv")
        assert ref.location == "external"
        assert ref.size_bytes == 71_005
        assert runs.get_result(tenant, ENV, "r1") == b"".join(chunks)
        forced = runs.put_result(tenant, ENV, "r1", b"tiny", offload=True)
        assert forced.location == "external"
        assert runs.get_result(tenant, ENV, "r1") == b"tiny"
        if runs.supports_inline_results:
            inline = runs.put_result(tenant, ENV, "r1", b"x" * 1000, offload=False)
            assert inline.location == "inline"
            assert runs.get_result(tenant, ENV, "r1") == b"x" * 1000
        # Each replacement removed the payload it replaced: nothing of this run is an orphan.
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0), dry_run=True) == []

    def test_a_corrupt_or_missing_payload_is_never_returned_as_the_result(
        self, stores: Stores, tenant: str
    ) -> None:
        _require_location(stores)
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1", submitted_at=BASE_TIME))
        data = _payload(2)
        ref = runs.put_result(tenant, ENV, "r1", data, offload=True)
        payloads = runs.payloads
        assert payloads is not None
        assert ref.uri is not None
        key = payloads.key_of(ref.uri)
        tampered = b"X" + data[1:]
        payloads.write(key, tampered, content_type="application/octet-stream")
        with pytest.raises(PayloadIntegrityError, match="corrupt"):
            runs.get_result(tenant, ENV, "r1")
        truncated = data[:-10]
        payloads.write(key, truncated, content_type="application/octet-stream")
        with pytest.raises(PayloadIntegrityError):
            b"".join(runs.iter_result(tenant, ENV, "r1"))
        payloads.delete(ref.uri)
        with pytest.raises(NotFoundError):
            runs.get_result(tenant, ENV, "r1")
        with pytest.raises(NotFoundError):
            runs.get_result(tenant, ENV, "nope")
        runs.put(make_run(tenant, ENV, "r2"))
        with pytest.raises(NotFoundError, match="no result"):
            runs.get_result(tenant, ENV, "r2")
        with pytest.raises(NotFoundError):
            runs.put_result(tenant, ENV, "missing-run", b"x")

    def test_gc_collects_only_this_stores_orphans_after_the_grace_period(
        self, stores: Stores, tenant: str
    ) -> None:
        _require_location(stores)
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1", submitted_at=BASE_TIME))
        kept = runs.put_result(tenant, ENV, "r1", _payload(3), offload=True)
        payloads = runs.payloads
        store_id = runs.store_id()
        assert payloads is not None
        assert store_id is not None
        orphan = payloads.write(
            f"{store_id}/{tenant}/{ENV}/job_runs/r1/result-00000000deadbeef.bin", b"orphan", content_type="x"
        )
        other = payloads.write(
            f"0123456789abcdef/{tenant}/{ENV}/job_runs/r1/result-00000000deadbeef.bin",
            b"another store's",
            content_type="x",
        )
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(hours=1)) == []
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0), dry_run=True) == [orphan.uri]
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0)) == [orphan.uri]
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0)) == []
        assert runs.get_result(tenant, ENV, "r1") == _payload(3)
        assert kept.uri is not None
        assert b"".join(payloads.read_chunks(other.uri)) == b"another store's"
        payloads.delete(other.uri)
        with pytest.raises(InvalidArtifactError, match="prefix"):
            runs.gc_payloads(prefix="../x\n")

    def test_delete_with_result_removes_record_then_payload(self, stores: Stores, tenant: str) -> None:
        _require_location(stores)
        runs = stores.job_runs
        for job_id, offload in (("r1", True), ("r2", not runs.supports_inline_results)):
            runs.put(make_run(tenant, ENV, job_id, submitted_at=BASE_TIME))
            ref = runs.put_result(tenant, ENV, job_id, b"payload " + job_id.encode(), offload=offload)
            assert runs.delete_with_result(tenant, ENV, job_id) is True
            assert runs.get(tenant, ENV, job_id) is None
            if ref.uri is not None:
                payloads = runs.payloads
                assert payloads is not None
                with pytest.raises(NotFoundError):
                    b"".join(payloads.read_chunks(ref.uri))
        assert runs.delete_with_result(tenant, ENV, "r1") is False
        runs.put(make_run(tenant, ENV, "r3"))
        runs.put_result(tenant, ENV, "r3", {"k": 1})
        assert runs.delete_result(tenant, ENV, "r3") is True
        stored = runs.get(tenant, ENV, "r3")
        assert stored is not None
        assert stored.result is None
        assert runs.delete_result(tenant, ENV, "r3") is False

    def test_put_with_result_writes_both_or_neither(self, stores: Stores, tenant: str) -> None:
        _require_location(stores)
        runs = stores.job_runs
        run = make_run(tenant, ENV, "r1", submitted_at=BASE_TIME, status="succeeded")
        etag, ref = runs.put_with_result(run, _payload(4), content_type="application/octet-stream")
        entry = runs.get_entry(tenant, ENV, "r1")
        assert entry is not None
        assert entry.etag == etag
        assert entry.artifact.result == ref
        assert runs.get_result(tenant, ENV, "r1") == _payload(4)
        # A record that cannot be written leaves no result behind.
        with pytest.raises(ConflictError):
            runs.put_with_result(run, _payload(5), create_only=True)
        assert runs.get_result(tenant, ENV, "r1") == _payload(4)
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0), dry_run=True) == []
        # Replacing the run's result through it removes the replaced payload.
        runs.put_with_result(run, {"small": True}, if_match=etag)
        assert json.loads(runs.get_result(tenant, ENV, "r1")) == {"small": True}
        assert runs.gc_payloads(prefix=f"{tenant}/", older_than=timedelta(0), dry_run=True) == []

    def test_bad_results_are_refused(self, stores: Stores, tenant: str) -> None:
        runs = stores.job_runs
        runs.put(make_run(tenant, ENV, "r1"))
        for bad in ("text is not bytes", 42, None):
            with pytest.raises(InvalidArtifactError, match="result"):
                runs.put_result(tenant, ENV, "r1", bad)
        with pytest.raises(InvalidArtifactError, match="content_type"):
            runs.put_result(tenant, ENV, "r1", b"x", content_type="text/plain\r\nX-Evil: 1")
        with pytest.raises(InvalidArtifactError, match="result_type"):
            runs.put_result(tenant, ENV, "r1", b"x", result_type="\x00")
        stored = runs.get(tenant, ENV, "r1")
        assert stored is not None
        assert stored.result is None
