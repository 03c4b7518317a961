"""Azurite (the Azure Blob emulator) for the tests.

``azurite`` (session) starts ``node_modules/.bin/azurite-blob`` in memory on a free port in its own
process group, waits until it answers, and at the end stops exactly that process group (SIGTERM,
then SIGKILL). ``start_azurite()`` does the same for a test that needs its own short-lived
instance (to stop it mid-test). ``blob_container`` gives each test a fresh uuid-named container
and deletes it afterwards. A missing binary or a failed start fails under ``CI=true`` and skips
elsewhere (``require_service``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.postgres import require_service

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BIN = Path(
    os.environ.get(
        "DQ_TEST_AZURITE_BIN", Path(__file__).resolve().parents[2] / "node_modules/.bin/azurite-blob"
    )
)
START_TIMEOUT = 30.0


class AzuriteUnavailable(RuntimeError):
    pass


@dataclass
class Azurite:
    """One running Azurite blob service (started by us: ``process`` is ours to stop)."""

    port: int
    process: subprocess.Popen[bytes] | None = field(repr=False)
    log_path: Path | None = None
    host: str = "127.0.0.1"
    account_name: str = ACCOUNT
    account_key: str = field(default=ACCOUNT_KEY, repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def url(self, container: str, prefix: str = "") -> str:
        """The emulator-form store URL (credential from ``credential=`` or the environment)."""
        tail = f"/{prefix}" if prefix else ""
        return f"azure-blob://{self.host}:{self.port}/{self.account_name}/{container}{tail}"

    def stop(self) -> None:
        """Stop the process group we started: SIGTERM, then SIGKILL after 5 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        pgid = process.pid  # start_new_session=True made it the group leader
        try:
            os.killpg(pgid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(azurite: Azurite) -> bool:
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(
        azurite.connection_string, retry_total=0, connection_timeout=2, read_timeout=5
    ) as client:
        try:
            client.get_service_properties()
        except AzureError:
            return False
    return True


def start_azurite(workdir: Path) -> Azurite:
    """Start an in-memory Azurite on a free port and wait until it answers; raises
    ``AzuriteUnavailable`` (with the reason) if it cannot."""
    if not AZURITE_BIN.exists():
        raise AzuriteUnavailable(f"{AZURITE_BIN} is missing (npm ci installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = "no attempt"
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        log_path = workdir / f"azurite-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(AZURITE_BIN),
                    "--inMemoryPersistence",
                    "--extentMemoryLimit",
                    "256",
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
        azurite = Azurite(port, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.05
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last_error = (
                    f"exited with {process.returncode}: {log_path.read_text(errors='replace')[-500:]}"
                )
                break
            if _port_open(port) and _answers(azurite):
                return azurite
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        else:
            last_error = f"did not answer within {START_TIMEOUT:.0f} s"
        azurite.stop()
    raise AzuriteUnavailable(last_error)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """The session's Azurite blob service."""
    try:
        instance = start_azurite(tmp_path_factory.mktemp("azurite"))
    except AzuriteUnavailable as exc:
        require_service("Azurite", str(exc))
        raise  # unreachable: require_service fails or skips
    try:
        yield instance
    finally:
        instance.stop()


@dataclass(frozen=True)
class BlobContainer:
    """A fresh container on the session's Azurite."""

    azurite: Azurite
    name: str

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    def url(self, prefix: str = "") -> str:
        """``azure-blob://<container>[/<prefix>]`` (pass ``connection_string=``)."""
        return f"azure-blob://{self.name}/{prefix}" if prefix else f"azure-blob://{self.name}"

    def blob_names(self, prefix: str = "") -> list[str]:
        from azure.storage.blob import ContainerClient

        with ContainerClient.from_connection_string(self.connection_string, self.name) as client:
            return sorted(str(b.name) for b in client.list_blobs(name_starts_with=prefix or None))


def _fresh_container(azurite: Azurite) -> Iterator[BlobContainer]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    name = f"dqtest-{uuid.uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=1) as client:
        client.create_container(name)
        try:
            yield BlobContainer(azurite, name)
        finally:
            with contextlib.suppress(ResourceNotFoundError):
                client.delete_container(name)


@pytest.fixture
def blob_container(azurite: Azurite) -> Iterator[BlobContainer]:
    """A uuid-named container for one test, deleted afterwards."""
    yield from _fresh_container(azurite)


@pytest.fixture(scope="class")
def class_blob_container(azurite: Azurite) -> Iterator[BlobContainer]:
    """A uuid-named container shared by the tests of one class (a conformance suite subclass)."""
    yield from _fresh_container(azurite)
