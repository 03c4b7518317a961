"""No secret ever leaves through a side door: passwords in database URLs, Azure account keys and
SAS tokens must not appear in log records (everything at DEBUG, the Azure SDK's and SQLAlchemy's
included), exception messages or any exception in their ``__cause__``/``__context__`` chains
(formatted tracebacks included), reprs, the output of the real ``dq-stores`` command (also with
``--debug``) and the files it exports, Dagster's run storage, event log, run config snapshot and
materialization metadata.

The secrets are real: a PostgreSQL role created with a password (through
``dq_stores.sql.rls.create_app_role``, which must not leak it either; the test server trusts local
connections, so the password is sent and ignored), the Azurite account key, and a SAS token signed
with it. Every search looks for each secret raw and URL-encoded, and each search is shown able to
find something that *is* there (a canary), so a passing test cannot come from searching the wrong
place.
"""

# No ``from __future__ import annotations``: Dagster reads the asset's parameter annotations.
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dq_stores.errors import BackendUnavailableError, InvalidArtifactError, StoreError
from dq_stores.registry import open_stores
from dq_stores.sql.engine import create_sql_engine
from dq_stores.sql.rls import create_app_role
from dq_stores.testing.builders import BASE_TIME, make_contract, make_run, unique_id
from tests.plugins.azurite import BlobContainer, free_port
from tests.plugins.postgres import PG_DSN
from tests.reliability._proxy import TcpProxy

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.azurite, pytest.mark.dagster]

SCRIPT = Path(sys.executable).with_name("dq-stores")
FIXTURES = Path(__file__).resolve().parents[2] / "dq_stores" / "testing" / "fixtures"
T, E = "TNT-001", "prod"  # the scope of the packaged fixture documents


# -- the secrets and the search ----------------------------------------------------------------------


@dataclass
class Secrets:
    pg_password: str
    pg_url: str
    """postgresql+psycopg://<role>:<password>@127.0.0.1:5432/test?schema=<schema>"""
    schema: str
    role: str
    account_key: str
    connection_string: str
    sas_token: str
    sas_signature: str
    blob: BlobContainer

    @property
    def values(self) -> list[str]:
        # The password also as it is written inside the URL (SQLAlchemy's own percent-encoding).
        in_url = self.pg_url.split("@", 1)[0].rsplit(":", 1)[1]
        return [self.pg_password, in_url, self.account_key, self.sas_signature]

    def sas_url(self, prefix: str, **query: str) -> str:
        """The emulator-form store URL with the SAS token pasted into its query."""
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"{self.blob.azurite.url(self.blob.name, prefix)}?{self.sas_token}{extra}"


def forms(secret: str) -> set[str]:
    """A secret as it may appear: raw, percent-encoded (path and query styles)."""
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def leaks(secrets: Secrets, texts: Iterable[str | bytes]) -> list[str]:
    """Every (secret form, excerpt) found in ``texts``."""
    found = []
    for text in texts:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        # Also percent-decoded: a client library may encode some characters of a secret and not
        # others (a SAS signature's '+' but not its '/'), which no fixed encoding would match.
        for raw in {decoded, unquote(decoded), unquote_plus(decoded)}:
            for secret in secrets.values:
                for form in forms(secret):
                    at = raw.find(form)
                    if at >= 0:
                        found.append(f"{form[:8]}... in ...{raw[max(0, at - 300) : at + 20]!r}...")
    return found


def exception_texts(exc: BaseException) -> list[str]:
    """Message, repr and formatted traceback of ``exc`` and of every exception chained to it."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        texts += [str(item), repr(item), *(str(a) for a in item.args)]
        todo += [item.__cause__, item.__context__, getattr(item, "orig", None)]
    return texts


def sqlite_cells(path: Path) -> list[bytes]:
    """Every value of every table of a SQLite file; compressed blobs decompressed."""
    cells: list[bytes] = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):
                            value = zlib.decompress(value)
                        cells.append(value)
                    elif value is not None:
                        cells.append(str(value).encode())
    return cells


def log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(r) for r in records]


@pytest.fixture
def secrets(pg_url: str, blob_container: BlobContainer) -> Iterator[Secrets]:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    password = f"Pg-{uuid.uuid4().hex[:10]}/s3cr3t+%&="  # URL-special characters on purpose
    role = f"dqsecret_{uuid.uuid4().hex[:10]}"
    schema = f"dqtest_{uuid.uuid4().hex[:12]}"
    owner = create_sql_engine(pg_url)
    try:
        create_app_role(owner, role, password=password)
    finally:
        owner.dispose()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    # The server keeps a SCRAM verifier, never the password: create_app_role sent only that.
    assert stored is not None and stored[0].startswith("SCRAM-SHA-256$") and password not in stored[0]
    url = (
        make_url(pg_url)
        .set(username=role, password=password)
        .update_query_dict({"schema": schema})
        .render_as_string(hide_password=False)
    )
    azurite = blob_container.azurite
    sas = generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    try:
        yield Secrets(
            pg_password=password,
            pg_url=url,
            schema=schema,
            role=role,
            account_key=azurite.account_key,
            connection_string=blob_container.connection_string,
            sas_token=sas,
            sas_signature=unquote(signature),
            blob=blob_container,
        )
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_the_search_finds_what_is_there(secrets: Secrets) -> None:
    assert password_in_url(secrets)
    assert leaks(secrets, [f"x{quote(secrets.account_key, safe='')}x"])
    assert leaks(secrets, [secrets.sas_token.encode()])
    exc = RuntimeError("outer")
    exc.__cause__ = ValueError(f"inner {secrets.pg_password}")
    assert leaks(secrets, exception_texts(exc))


def password_in_url(secrets: Secrets) -> bool:
    return bool(leaks(secrets, [secrets.pg_url]))


# -- the library -------------------------------------------------------------------------------------


def _expect(call: Callable[[], Any], error: type[BaseException]) -> BaseException:
    try:
        call()
    except error as exc:
        return exc
    pytest.fail(f"expected {error.__name__}")


def test_library_logs_errors_and_reprs_hold_no_secret(
    secrets: Secrets, pg_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)  # root: every library's DEBUG records
    for name in ("sqlalchemy.engine", "sqlalchemy.pool", "azure", "psycopg", "dq_stores"):
        caplog.set_level(logging.DEBUG, logger=name)

    # PostgreSQL, as the role with a password: every kind of call, an inline and a file result.
    results = tmp_path / "results"
    with open_stores(secrets.pg_url, results_url=results.as_uri()) as stores:
        tenant = unique_id("t")
        stores.contracts.put(make_contract(tenant, E))
        stores.job_runs.put(make_run(tenant, E, "r1", submitted_at=BASE_TIME))
        ref = stores.job_runs.put_result(tenant, E, "r1", {"rows": 3})
        ref2 = stores.job_runs.put_result(tenant, E, "r1", b"x" * 10, offload=True)
        assert stores.job_runs.get_result(tenant, E, "r1") == b"x" * 10
        texts += [
            repr(stores),
            str(stores.url),
            repr(ref),
            repr(ref2),
            repr(stores.job_runs.get(tenant, E, "r1")),
        ]
        texts += [
            repr(s)
            for s in (stores.contracts, stores.job_definitions, stores.action_profiles, stores.job_runs)
        ]
        assert stores.contracts.list(tenant, E).items

    # ...unreachable (nothing listens), and cut off mid-transaction by a proxy.
    closed = make_url(secrets.pg_url).set(port=free_port()).render_as_string(hide_password=False)
    texts += exception_texts(_expect(lambda: open_stores(closed), BackendUnavailableError))
    upstream = make_url(secrets.pg_url)
    with TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
        through = make_url(secrets.pg_url).set(port=proxy.port).render_as_string(hide_password=False)
        with open_stores(through) as stores:
            proxy.cut_on(b"COMMIT")
            cut = _expect(
                lambda: stores.contracts.put(make_contract(unique_id("t"), E)), BackendUnavailableError
            )
            texts += exception_texts(cut)
            texts += [repr(stores)]
    # ...and refused as a URL: an invalid schema name, a backend we do not have.
    bad_schema = secrets.pg_url.replace(f"schema={secrets.schema}", "schema=no;pe")
    texts += exception_texts(_expect(lambda: open_stores(bad_schema), InvalidArtifactError))
    other = secrets.pg_url.replace("postgresql+psycopg://", "mysql+pymysql://")
    texts += exception_texts(_expect(lambda: create_sql_engine(other), InvalidArtifactError))

    # Azure Blob with the account key (connection string) and with a SAS token in the URL.
    for url, options in (
        (secrets.blob.url("key"), {"connection_string": secrets.connection_string}),
        (secrets.sas_url("sas"), {}),
    ):
        with open_stores(url, **options) as stores:
            tenant = unique_id("t")
            stores.contracts.put(make_contract(tenant, E))
            stores.job_runs.put(make_run(tenant, E, "r1", submitted_at=BASE_TIME))
            ref = stores.job_runs.put_result(tenant, E, "r1", b"payload")
            assert stores.job_runs.get_result(tenant, E, "r1") == b"payload"
            run = stores.job_runs.get(tenant, E, "r1")
            texts += [repr(stores), str(stores.url), repr(ref), str(ref.uri), repr(run)]
            texts += [repr(s) for s in (stores.contracts, stores.job_runs)]
            texts += [repr(stores.job_runs.payloads)]
    # ...unreachable, with a wrong key, and with the key put where a URL must not hold it.
    azurite = secrets.blob.azurite
    dead = secrets.sas_url("x", retry_total="0").replace(f":{azurite.port}/", f":{free_port()}/")

    def read_dead() -> None:
        with open_stores(dead) as stores:
            stores.contracts.get(T, E, "c")

    texts += exception_texts(_expect(read_dead, StoreError))
    wrong_key = secrets.connection_string.replace(secrets.account_key, secrets.account_key[::-1])
    with open_stores(secrets.blob.url("wrong"), connection_string=wrong_key, retry_total=0) as stores:
        texts += exception_texts(_expect(lambda: stores.contracts.get(T, E, "c"), StoreError))
    in_userinfo = azurite.url(secrets.blob.name).replace(
        "azure-blob://", f"azure-blob://{azurite.account_name}:{quote(secrets.account_key, safe='')}@"
    )
    texts += exception_texts(_expect(lambda: open_stores(in_userinfo), InvalidArtifactError))

    # Creating the role again fails (it exists): the reason is given, the statement is not.
    owner = create_sql_engine(pg_url)
    try:
        again = _expect(
            lambda: create_app_role(owner, secrets.role, password=secrets.pg_password), StoreError
        )
    finally:
        owner.dispose()
    assert "already exists" in str(again) and "SCRAM" not in "".join(exception_texts(again))
    texts += exception_texts(again)

    # The Dagster resource, given the secrets directly rather than through EnvVar.
    from dq_dagster.resources import DQStoresResource

    resource = DQStoresResource(url=secrets.pg_url, results_connection_string=secrets.connection_string)
    texts += [repr(resource), str(resource)]

    records = log_texts(caplog.records)
    assert len(records) > 20, "DEBUG logging was not captured"
    assert any("sqlalchemy" in r for r in records) and any("azure" in r for r in records)
    found = leaks(secrets, texts + records)
    assert not found, found


# -- the command -------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DQ_STORES_", "AZURE_STORAGE_"))}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        cwd=cwd,
    )


def test_cli_output_and_exports_hold_no_secret(secrets: Secrets, tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is not installed: pip install -e ."
    pg, sas_url = secrets.pg_url, secrets.sas_url("cli")
    key_env = {"AZURE_STORAGE_CONNECTION_STRING": secrets.connection_string}
    closed_pg = make_url(pg).set(port=free_port()).render_as_string(hide_password=False)
    azurite = secrets.blob.azurite
    closed_blob = secrets.sas_url("x", retry_total="0").replace(f":{azurite.port}/", f":{free_port()}/")
    scope = ["--tenant", T, "--env", E]
    results = f"{secrets.blob.url('cli-results')}"
    # Three independent sequences, run side by side (each waits ~1 s per command on imports).
    sequences: list[list[tuple[list[str], dict[str, str] | None, int]]] = [
        [
            (["db", "upgrade", "--url", pg], None, 0),
            (["--url", pg, "import", str(FIXTURES)], None, 0),
            (["--url", pg, "ls", "runs", *scope], None, 0),
            (["--url", pg, "db", "current", "--check"], None, 0),
            # The fixtures hold a run whose result is a reference only: carried as such.
            (
                ["export", str(tmp_path / "pg-export"), *scope, "--url", pg, "--allow-result-references"],
                None,
                0,
            ),
            (["copy", "--from", pg, "--to", sas_url, *scope, "--allow-result-references"], None, 0),
            (["--url", sas_url, "ls", "contracts", *scope], None, 0),
            (
                [
                    "export",
                    str(tmp_path / "blob-export"),
                    *scope,
                    "--url",
                    sas_url,
                    "--allow-result-references",
                ],
                None,
                0,
            ),
        ],
        [
            (
                ["--url", secrets.blob.url("env"), "--results-url", results, "import", str(FIXTURES)],
                key_env,
                0,
            ),
            (["--url", secrets.blob.url("env"), "ls", "runs", *scope, "--json"], key_env, 0),
            (["--url", closed_pg, "ls", "runs", *scope], None, 1),
        ],
        [
            (["--debug", "--url", closed_pg, "ls", "runs", *scope], None, 1),
            (["--url", closed_blob, "ls", "runs", *scope], None, 1),
            (["--debug", "--url", closed_blob, "ls", "runs", *scope], None, 1),
        ],
    ]

    def run_sequence(steps: list[tuple[list[str], dict[str, str] | None, int]]) -> list[str]:
        printed = []
        for args, env, code in steps:
            proc = run_cli(*args, env=env, cwd=tmp_path)
            shown = " ".join(args)[:160]
            assert proc.returncode == code, f"{shown}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
            printed += [proc.stdout, proc.stderr]
        return printed

    with ThreadPoolExecutor(len(sequences)) as pool:
        outputs = [text for printed in pool.map(run_sequence, sequences) for text in printed]
    assert "Traceback" in "".join(outputs), "--debug printed no traceback: the search missed it"
    assert "imported" in "".join(outputs) and secrets.role in "".join(outputs)  # the canary: URLs are shown
    exported = [p.read_bytes() for p in tmp_path.rglob("*.json")]
    assert len(exported) >= 8
    found = leaks(secrets, [*outputs, *exported])
    assert not found, found


# -- Dagster ----------------------------------------------------------------------------------------


def test_dagster_run_storage_event_log_and_metadata_hold_no_secret(
    secrets: Secrets,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from dagster import (
        AssetExecutionContext,
        DagsterInstance,
        EnvVar,
        MetadataValue,
        asset,
        materialize,
        serialize_value,
    )
    from dagster_azure.blob import AzureBlobStorageResource, AzureBlobStorageSASTokenCredential

    from dq_dagster.io_manager import JobRunIOManager
    from dq_dagster.resources import ContractStoreResource, DQStoresResource
    from dq_stores.models import RuleResult, ValidationReport

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DQ_SECRET_PG_URL", secrets.pg_url)
    monkeypatch.setenv("DQ_SECRET_AZ_CONN", secrets.connection_string)
    monkeypatch.setenv("DQ_SECRET_AZ_SAS", secrets.sas_token)
    closed = make_url(secrets.pg_url).set(port=free_port()).render_as_string(hide_password=False)
    monkeypatch.setenv("DQ_SECRET_DEAD_URL", closed)
    with open_stores(secrets.pg_url) as stores:  # create the schema (as the role) for the run
        assert stores.contracts.get(T, E, "x") is None
    canary = f"canary-{uuid.uuid4().hex}"
    tenant = unique_id("t")

    def report() -> ValidationReport:
        return ValidationReport(
            tenant_id=tenant,
            environment=E,
            contract_id="billing-contract",
            contract_version="1.0.0",
            dataset_type="billing",
            started_at=BASE_TIME,
            completed_at=BASE_TIME,
            status="failed",
            row_count=10,
            rows_failed=1,
            pass_rate=0.9,
            rules=[
                RuleResult(
                    rule_id="amount-positive",
                    rule_type="min_value",
                    column="amount",
                    checked_count=10,
                    failed_count=1,
                    failure_rate=0.1,
                    passed=False,
                )
            ],
        )

    @asset
    def checked(context: AssetExecutionContext, contracts: ContractStoreResource) -> ValidationReport:
        contracts.put(make_contract(tenant, E, "billing-contract", dataset_types=["billing"]))
        context.add_output_metadata({"canary": MetadataValue.text(canary)})
        context.log.info(f"checked with stores {contracts!r}")
        return report()

    backends = {
        "connection-string": DQStoresResource(
            url=EnvVar("DQ_SECRET_PG_URL"),
            results_url=secrets.blob.url("dagster"),
            results_connection_string=EnvVar("DQ_SECRET_AZ_CONN"),
            result_backend="blob",
        ),
        "sas": DQStoresResource(
            url=EnvVar("DQ_SECRET_PG_URL"),
            results_url=secrets.blob.url("dagster"),
            result_backend="blob",
            blob_storage=AzureBlobStorageResource(
                account_url=secrets.blob.azurite.blob_endpoint,
                credential=AzureBlobStorageSASTokenCredential(token=EnvVar("DQ_SECRET_AZ_SAS")),
            ),
        ),
    }
    home = tmp_path / "dagster_home"
    home.mkdir()
    texts: list[str] = []
    with DagsterInstance.local_temp(tempdir=str(home)) as instance:
        run_ids = []
        for backend in backends.values():
            resources = {
                "io_manager": JobRunIOManager(stores=backend, tenant=tenant, environment=E),
                "contracts": ContractStoreResource(backend=backend, tenant=tenant, environment=E),
                "dq_stores": backend,  # top level too, so its config is in the job snapshot
            }
            result = materialize([checked], resources=resources, instance=instance)
            assert result.success
            run_ids.append(result.run_id)
            for event in result.asset_materializations_for_node("checked"):
                texts.append(repr(event.metadata))
                assert event.metadata["canary"] == MetadataValue.text(canary)
                assert str(event.metadata["dq/result_location"].value) == "external"
        # A run whose store cannot be reached fails in resource setup: the error is stored.
        dead = DQStoresResource(url=EnvVar("DQ_SECRET_DEAD_URL"))
        failed = materialize(
            [checked],
            resources={
                "io_manager": JobRunIOManager(stores=dead, tenant=tenant, environment=E),
                "contracts": ContractStoreResource(backend=dead, tenant=tenant, environment=E),
            },
            instance=instance,
            raise_on_error=False,
        )
        assert not failed.success
        run_ids.append(failed.run_id)
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.job_snapshot_id is not None
            texts.append(serialize_value(run))
            texts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
            texts += [serialize_value(entry) for entry in instance.all_logs(run_id)]
        failure_text = "".join(texts[-len(instance.all_logs(failed.run_id)) :])
        assert "BackendUnavailableError" in failure_text, "the failed run's error was not stored"
    # Everything the instance wrote to disk (run storage, event logs, compute logs, schedules),
    # with every SQLite cell read out and zlib-compressed ones (Dagster's snapshots) inflated.
    stored = [p.read_bytes() for p in home.rglob("*") if p.is_file()]
    stored += [cell for p in home.rglob("*.db") for cell in sqlite_cells(p)]
    assert any(canary.encode() in data for data in stored), "the canary is not on disk: wrong place searched"
    assert any(b"DQ_SECRET_PG_URL" in data for data in stored), "the run config (EnvVar name) is not on disk"
    out, err = capfd.readouterr()
    found = leaks(secrets, [*texts, *stored, *log_texts(caplog.records), out, err])
    assert not found, found
