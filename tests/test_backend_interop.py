"""Across backends: a populated Postgres store copied to Blob and to the filesystem and back gives
byte-identical exports; a 50 MB result goes through the claim check to Azurite and back verified;
a corrupted payload is reported, not returned."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from dq_stores import open_stores
from dq_stores.errors import PayloadIntegrityError
from dq_stores.scope import Scope
from dq_stores.testing.builders import make_action_profile, make_contract, make_job_definition, make_run
from dq_stores.transfer import copy_scope, export_scope
from tests.plugins.azurite import BlobContainer

T, E = "TNT-001", "prod"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _export(stores, out: Path) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """The export tree: canonical records plus each run's result payload beside it."""
    list(export_scope(stores, Scope(T, E), out))
    return _tree(out)


@pytest.mark.postgres
@pytest.mark.azurite
def test_postgres_to_blob_to_filesystem_and_back_exports_identically(
    tmp_path: Path, pg_url: str, pg_schema: str, blob_container: BlobContainer
) -> None:
    scope = Scope(T, E)
    blob_opts = {"connection_string": blob_container.connection_string}
    with open_stores(pg_url, schema=pg_schema, results_url=f"file://{tmp_path}/pg-results") as pg:
        for version in ("1.0.0", "1.9.0", "1.10.0"):
            pg.contracts.put(make_contract(T, E, "billing", version=version))
        pg.job_definitions.put(make_job_definition(T, E, "daily", tags=["billing", "daily"]))
        pg.action_profiles.put(make_action_profile(T, E, "alerts"))
        for i in range(5):
            pg.job_runs.put(
                make_run(T, E, f"run-{i}", submitted_at=dt.datetime(2026, 1, 1 + i, tzinfo=dt.UTC))
            )
        pg.job_runs.put_result(T, E, "run-0", {"rule": "x", "failed": 3})
        pg.job_runs.put_result(T, E, "run-1", b"y" * 300_000, content_type="text/csv")  # offloaded
        original = _export(pg, tmp_path / "export-pg")

        with open_stores(blob_container.url("copy"), **blob_opts) as blob:
            first = [o for o in copy_scope(pg, blob, scope)]
            again = [o for o in copy_scope(pg, blob, scope)]
            assert all(o.status != "failed" for o in first), first
            assert all(o.status == "skipped" for o in again), again
            assert _export(blob, tmp_path / "export-blob") == original
            assert blob.job_runs.get_result(T, E, "run-1") == b"y" * 300_000

            with open_stores(f"file://{tmp_path}/fs") as fs:
                list(copy_scope(blob, fs, scope))
                assert _export(fs, tmp_path / "export-fs") == original
                assert fs.job_runs.get_result(T, E, "run-0") == b'{"failed":3,"rule":"x"}'

                with open_stores(f"sqlite:///{tmp_path}/back.db") as back:
                    list(copy_scope(fs, back, scope))
                    assert _export(back, tmp_path / "export-back") == original
                    assert back.job_runs.get_result(T, E, "run-1") == b"y" * 300_000
    # 3 contract versions, 1 job definition, 1 action profile, 5 runs, 2 result payloads.
    assert len(original) == 3 + 1 + 1 + 5 + 2
    assert original["TNT-001/prod/job_runs/run-1.result.csv"] == b"y" * 300_000


def test_export_with_results_reimports_identically(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path}/a.db", offload_threshold=1000) as a:
        a.contracts.put(make_contract(T, E, "billing"))
        for i, payload in enumerate((b'{"small":true}', b"z" * 5000)):
            a.job_runs.put(make_run(T, E, f"run-{i}"))
            a.job_runs.put_result(T, E, f"run-{i}", payload, content_type="application/json")
        first = _export(a, tmp_path / "one")
    from dq_stores.transfer import apply_import, load_artifacts, plan_import

    with open_stores(f"sqlite:///{tmp_path}/b.db", offload_threshold=1000) as b:
        loaded, problems = load_artifacts([tmp_path / "one"])
        assert problems == []
        actions, problems = plan_import(b, loaded)
        assert problems == []
        list(apply_import(b, actions))
        assert b.job_runs.get_result(T, E, "run-1") == b"z" * 5000
        assert _export(b, tmp_path / "two") == first
        again, _ = plan_import(b, load_artifacts([tmp_path / "one"])[0])
        assert {a.action for a in again} == {"unchanged"}


@pytest.mark.azurite
@pytest.mark.slow
def test_50_mb_result_through_the_claim_check_to_azurite(
    tmp_path: Path, blob_container: BlobContainer
) -> None:
    data = os.urandom(1024 * 1024) * 50  # 50 MiB, incompressible per MiB
    with open_stores(
        f"sqlite:///{tmp_path}/dq.db",
        results_url=blob_container.url("results"),
        results_options={"connection_string": blob_container.connection_string},
    ) as stores:
        stores.job_runs.put(make_run(T, E, "big"))
        ref = stores.job_runs.put_result(T, E, "big", data, content_type="application/vnd.apache.parquet")
        assert ref.location == "external"
        assert ref.size_bytes == len(data)
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert ref.uri is not None and blob_container.name in ref.uri
        assert stores.job_runs.get_result(T, E, "big") == data

        # Corrupt the payload in place: the store reports it instead of returning it.
        from azure.storage.blob import BlobClient

        name = next(n for n in blob_container.blob_names("results") if "/big/result-" in n)
        with BlobClient.from_connection_string(
            blob_container.connection_string, blob_container.name, name
        ) as client:
            client.upload_blob(data[:-1] + b"\x00", overwrite=True)
        with pytest.raises(PayloadIntegrityError, match="corrupt"):
            stores.job_runs.get_result(T, E, "big")
