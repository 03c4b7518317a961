"""The services benchmarks run against: Postgres (one schema per benchmark, dropped afterwards) and
Azurite (started here in memory, or given by the caller, e.g. the test suite's fixture).

A missing service makes the benchmarks that need it report ``skipped`` with the reason; it never
stops the others.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_DSN = os.environ.get("DQ_BENCH_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
PG_URL = os.environ.get("DQ_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account (public, documented by Microsoft; not a secret)."""


@dataclass
class Services:
    """What is available for this run; ``None`` plus a reason when a service is not."""

    pg_dsn: str | None = None
    pg_url: str | None = None
    pg_reason: str = ""
    azurite_connection_string: str | None = None
    azurite_reason: str = ""


def postgres_available(dsn: str = PG_DSN) -> str | None:
    """``None`` if Postgres answers at ``dsn``, else why not."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return f"Postgres unavailable ({str(exc).strip().splitlines()[0]})"
    return None


@contextmanager
def pg_schema(services: Services, label: str) -> Iterator[str]:
    """A fresh schema for one benchmark, migrated to the current revision; dropped at the end."""
    import psycopg

    from dq_stores.registry import open_stores

    assert services.pg_dsn is not None
    assert services.pg_url is not None
    name = f"dqbench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        # Postgres does not upgrade itself on open; the benchmark's schema is created explicitly.
        open_stores(services.pg_url, schema=name, auto_upgrade=True).close()
        yield name
    finally:
        with psycopg.connect(services.pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def raw_pg(services: Services, schema: str) -> Any:
    """A plain psycopg connection in autocommit whose search path is ``schema``: the baseline's."""
    import psycopg

    assert services.pg_dsn is not None
    conn = psycopg.connect(services.pg_dsn, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


AZURITE_BIN = Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "azurite-blob"
AZURITE_MEMORY_MB = 3072
"""In-memory extent limit of the bench's own Azurite: overwritten 50 MB payloads are only freed by
Azurite's periodic GC, so the test suite's 256 MB would fill up within one benchmark."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(connection_string: str) -> bool:
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(
        connection_string, retry_total=0, connection_timeout=2, read_timeout=5
    ) as client:
        try:
            client.get_service_properties()
        except AzureError:
            return False
    return True


@contextmanager
def azurite(timeout: float = 30.0) -> Iterator[tuple[str | None, str]]:
    """(connection string, "") of an in-memory Azurite started for this run, in its own process
    group, stopped (that group only) afterwards; or (None, reason) if it cannot start.
    """
    if not AZURITE_BIN.exists():
        yield None, f"Azurite unavailable ({AZURITE_BIN} is missing; npm ci installs it)"
        return
    workdir = Path(tempfile.mkdtemp(prefix="dqbench-azurite-"))
    port = _free_port()
    log = (workdir / "azurite.log").open("wb")
    process = subprocess.Popen(
        [
            str(AZURITE_BIN),
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            str(AZURITE_MEMORY_MB),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(connection_string):
            if process.poll() is not None or time.monotonic() > deadline:
                yield (
                    None,
                    f"Azurite did not start: {(workdir / 'azurite.log').read_text(errors='replace')[-300:]}",
                )
                return
            time.sleep(0.2)
        yield connection_string, ""
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group we started (start_new_session)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log.close()


@contextmanager
def blob_container(connection_string: str) -> Iterator[str]:
    """A fresh uuid-named container, deleted afterwards."""
    from azure.storage.blob import BlobServiceClient

    name = f"dqbench-{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(connection_string) as client:
        client.create_container(name)
        try:
            yield name
        finally:
            client.delete_container(name)
