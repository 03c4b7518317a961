"""Row 6: a 50 MB result through the claim check to Azurite, write and read, against the same bytes
through raw azure-storage-blob ``upload_blob`` / ``download_blob``.

Ours: ``JobRunStore.put_result(..., offload=True)`` (payload streamed to Blob in blocks while
hashing, then the run record updated) and ``get_result`` (streamed back and hash-verified). Run
records live in an embedded SQLite store; payloads in a fresh Azurite container.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import data
from bench.harness import Config, Result, check, compare, skipped, throughput
from bench.services import Services, blob_container
from dq_stores.registry import open_stores

TENANT = "acme"
MB = 1024 * 1024


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    if not services.azurite_connection_string:
        for n, what in (("6a", "write"), ("6b", "read")):
            yield skipped(
                n, f"claim check {what} to Azurite", "throughput", ">= 0.8", services.azurite_reason
            )
        return
    yield from bench_claim_check(config, services.azurite_connection_string)


def bench_claim_check(config: Config, connection_string: str) -> list[Result]:
    from azure.storage.blob import ContainerClient

    payload = data.result_bytes(config.claim_bytes)
    size_mb = len(payload) / MB
    with blob_container(connection_string) as container, tempfile.TemporaryDirectory() as folder:
        results_url = f"azure-blob://{container}/results"
        stores = open_stores(
            f"sqlite:///{Path(folder) / 'dq.db'}",
            results_url=results_url,
            results_options={"connection_string": connection_string},
        )
        raw = ContainerClient.from_connection_string(connection_string, container)
        try:
            run = data.job_run(TENANT, "run-claim-check")
            stores.job_runs.put(run)
            job_runs = stores.job_runs

            def ours_write() -> Any:
                return job_runs.put_result(TENANT, data.ENV, run.job_id, payload, offload=True)

            def raw_write() -> Any:
                return raw.upload_blob("raw/result.bin", payload, overwrite=True)

            def ours_read() -> bytes:
                return job_runs.get_result(TENANT, data.ENV, run.job_id)

            def raw_read() -> bytes:
                return raw.download_blob("raw/result.bin").readall()

            ref = ours_write()
            raw_write()
            check(ref.location == "external" and ref.size_bytes == len(payload), "result was not offloaded")
            check(ours_read() == payload == raw_read(), "bytes read back differ")
            write = Result(
                "6a",
                f"claim check write of {size_mb:.0f} MB to Azurite (put_result)",
                "throughput",
                ">= 0.8",
                0.8,
                baseline_name="raw azure-storage-blob upload_blob of the same bytes (SDK defaults)",
            )
            # Slow operations: one call per repetition (the payload is overwritten each time).
            ours_t, base_t = compare(ours_write, raw_write, config, setup=lambda: None)
            read = Result(
                "6b",
                f"claim check read of {size_mb:.0f} MB from Azurite (get_result, hash verified)",
                "throughput",
                ">= 0.8",
                0.8,
                baseline_name="raw azure-storage-blob download_blob(...).readall() of the same bytes",
            )
            ours_r, base_r = compare(ours_read, raw_read, config, setup=lambda: None)
            return [
                throughput(write, ours_t, base_t, size_mb, "MB/s"),
                throughput(read, ours_r, base_r, size_mb, "MB/s"),
            ]
        finally:
            raw.close()
            stores.close()
