"""200 MB results stream through ``put_result`` / ``iter_result`` in bounded memory.

A fresh child process (spawned, so its memory is its own) writes a 200 MB result from an
iterator of 64 KiB chunks or from a binary file object to the filesystem payload store and to
Azure Blob (Azurite), then reads it back through ``iter_result``, hashing as it goes. Its peak
resident memory (VmHWM) may grow by at most 64 MB over what it held before each step: a few
4 MiB blocks, never the object. (``get_result`` returns the whole object by definition and is not measured.)
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SIZE = 200 * 1024 * 1024
PIECE = 64 * 1024
MAX_GROWTH = 64 * 1024 * 1024
T, E = "stream-tenant", "prod"

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def _pieces(size: int) -> Iterator[bytes]:
    """``size`` bytes as 64 KiB pieces of 16 distinct pseudo-random blocks (no big buffer)."""
    blocks = [hashlib.sha256(bytes([i])).digest() * (PIECE // 32) for i in range(16)]
    sent = 0
    n = 0
    while sent < size:
        piece = blocks[n % 16][: size - sent]
        n += 1
        sent += len(piece)
        yield piece


def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in _pieces(size):
        digest.update(piece)
    return digest.hexdigest()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} is not in /proc/self/status")


def reset_peak() -> int:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``); return it.

    ``getrusage``'s ``ru_maxrss`` is no use here: Linux carries it over ``exec``, so a child
    spawned by a big test process starts with the parent's peak."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # without the reset the peak only over-counts
    return _status_kib("VmRSS") * 1024


def peak() -> int:
    return _status_kib("VmHWM") * 1024


def stream_child(url: str, options: dict[str, Any], source: str, queue: Any) -> None:
    """Child: write a 200 MB result from ``source`` ("iterator" or a file path), read it back
    through ``iter_result``; report memory growth, hashes and timings to the parent."""
    from dq_stores.registry import open_stores
    from dq_stores.testing.builders import make_run

    try:
        with open_stores(url, **options) as stores:
            runs = stores.job_runs
            runs.put(make_run(T, E, "big", status="running"))
            # Warm up every code path (imports, connection pools) on a small result first.
            runs.put_result(T, E, "big", _pieces(5 * 1024 * 1024), offload=True)
            for _ in runs.iter_result(T, E, "big"):
                pass
            baseline = reset_peak()
            started = time.perf_counter()
            if source == "iterator":
                ref = runs.put_result(T, E, "big", _pieces(SIZE), content_type="application/octet-stream")
            else:
                with open(source, "rb") as handle:
                    ref = runs.put_result(T, E, "big", handle, content_type="application/octet-stream")
            wrote = time.perf_counter() - started
            write_growth = peak() - baseline
            baseline = reset_peak()
            started = time.perf_counter()
            digest = hashlib.sha256()
            size = biggest = 0
            for chunk in runs.iter_result(T, E, "big"):
                digest.update(chunk)
                size += len(chunk)
                biggest = max(biggest, len(chunk))
            read = time.perf_counter() - started
            queue.put(
                {
                    "ok": True,
                    "sha256": ref.sha256,
                    "size": ref.size_bytes,
                    "read_sha256": digest.hexdigest(),
                    "read_size": size,
                    "biggest_chunk": biggest,
                    "write_growth": write_growth,
                    "read_growth": peak() - baseline,
                    "write_s": wrote,
                    "read_s": read,
                    "location": ref.location,
                }
            )
    except BaseException as exc:  # reported to the parent, which fails with it
        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run_in_child(url: str, options: dict[str, Any], source: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=stream_child, args=(url, options, source, queue))
    child.start()
    try:
        report: dict[str, Any] = queue.get(timeout=240)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    assert report["ok"], report.get("error")
    return report


def check(report: dict[str, Any], label: str) -> None:
    mib = 1024 * 1024
    print(
        f"\n[{label}] 200 MB: write {report['write_s']:.1f} s (+{report['write_growth'] / mib:.0f} MiB peak RSS), "
        f"read {report['read_s']:.1f} s (+{report['read_growth'] / mib:.0f} MiB), "
        f"largest chunk {report['biggest_chunk'] / mib:.0f} MiB"
    )
    assert report["location"] == "external"
    assert report["size"] == report["read_size"] == SIZE
    assert report["sha256"] == report["read_sha256"] == expected_sha256(SIZE)
    assert report["write_growth"] < MAX_GROWTH, f"writing held {report['write_growth'] / mib:.0f} MiB"
    assert report["read_growth"] < MAX_GROWTH, f"reading held {report['read_growth'] / mib:.0f} MiB"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streaming") / "result.bin"
    with path.open("wb") as out:
        for piece in _pieces(SIZE):
            out.write(piece)
    return path


@pytest.mark.parametrize("source", ["iterator", "file"])
def test_200_mb_result_streams_to_the_filesystem_in_bounded_memory(
    source: str, big_file: Path, tmp_path: Path
) -> None:
    report = run_in_child(f"file://{tmp_path}/fs", {}, "iterator" if source == "iterator" else str(big_file))
    check(report, f"filesystem, {source}")


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Any]:
    """An Azurite of our own per test: its in-memory store holds 256 MB, and a deleted 200 MB
    blob is not given back at once."""
    from tests.plugins.azurite import AzuriteUnavailable, start_azurite
    from tests.plugins.postgres import require_service

    try:
        instance = start_azurite(tmp_path / "azurite")
    except AzuriteUnavailable as exc:
        require_service("Azurite", str(exc))
        raise
    try:
        yield instance
    finally:
        instance.stop()


@pytest.mark.azurite
@pytest.mark.parametrize("source", ["iterator", "file"])
def test_200_mb_result_streams_to_blob_in_bounded_memory(
    source: str, big_file: Path, own_azurite: Any
) -> None:
    import uuid

    from azure.storage.blob import BlobServiceClient

    container = f"stream-{uuid.uuid4().hex[:12]}"
    with BlobServiceClient.from_connection_string(own_azurite.connection_string) as service:
        service.create_container(container)
        try:
            report = run_in_child(
                f"azure-blob://{container}/dq",
                {"connection_string": own_azurite.connection_string},
                "iterator" if source == "iterator" else str(big_file),
            )
        finally:
            service.delete_container(container)
    check(report, f"blob, {source}")
