"""Nothing lost at the edges: each case a new user met (issue "Nothing lost at the edges") as a
test that reproduces it - results locations with one owner, transfers that are all-or-nothing and
say so, one configuration for the CLI and Dagster, scopes listed by every backend, Azure failing
fast from the CLI, and destructive commands that never guess a unit.

Real SQLite files, the real Postgres (uuid-named schemas) and a real Azurite where marked.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from dq_stores.canonical import sha256_hex
from dq_stores.cli import cli
from dq_stores.errors import NoResultsLocationError, NotFoundError
from dq_stores.models import JobRun
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.testing.builders import make_contract, make_job_definition
from tests.plugins.postgres import PG_DSN

T, E = "TNT-001", "prod"
BIG = 300 * 1024  # over the 256 KiB offload threshold: goes to the results location


def run_cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def pg_schema_url(pg_url: str, schema: str) -> str:
    return f"{pg_url}?schema={schema}"


def payload(n: int, size: int = BIG) -> bytes:
    return (f"{n:08d}".encode() * (size // 8 + 1))[:size]


def seed(stores: Stores, runs: int = 3, *, tenant: str = T, environment: str = E) -> dict[str, bytes]:
    """A contract, a job definition and ``runs`` runs, each with an offloaded (large) result."""
    stores.contracts.put(make_contract(tenant, environment, "billing-contract", dataset_types=["billing"]))
    stores.job_definitions.put(make_job_definition(tenant, environment, "daily"))
    data: dict[str, bytes] = {}
    for i in range(runs):
        job_id = f"run-{i}"
        stores.job_runs.put(
            JobRun(
                job_id=job_id,
                tenant_id=tenant,
                environment=environment,
                job_type="cleansing",
                status="succeeded",
                submitted_at=datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=i),
            )
        )
        data[job_id] = payload(i)
        ref = stores.job_runs.put_result(
            tenant, environment, job_id, data[job_id], content_type="application/vnd.apache.parquet"
        )
        assert ref.location == "external"
    return data


@pytest.fixture
def opened() -> Iterator[list[Stores]]:
    handles: list[Stores] = []
    yield handles
    for stores in handles:
        stores.close()


def open_at(opened: list[Stores], url: str, **options: object) -> Stores:
    stores = open_stores(url, use_env=False, **options)  # type: ignore[arg-type]
    opened.append(stores)
    return stores


def tables_in(schema: str) -> list[str]:
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s", (schema,)
        ).fetchall()
    return sorted(r[0] for r in rows)


# -- 1. one owner per results location ----------------------------------------------------------


def test_1_two_sqlite_stores_in_one_folder_never_share_or_delete_each_others_payloads(
    tmp_path: Path, opened: list[Stores]
) -> None:
    main, backup = sqlite_url(tmp_path / "dq.db"), sqlite_url(tmp_path / "dq-backup.db")
    data = seed(open_at(opened, main))
    copied = run_cli("copy", "--from", main, "--to", backup, "--tenant", T, "--env", E)
    assert copied.exit_code == 0, copied.output
    purged = run_cli("--url", main, "purge-runs", "--older-than", "1d", "--tenant", T)
    assert purged.exit_code == 0, purged.output
    assert "deleted 3 job run(s)" in purged.stdout
    # Defaults never coincide: results live beside each database, named after it.
    assert (tmp_path / "dq.results").is_dir() and (tmp_path / "dq-backup.results").is_dir()
    kept = open_at(opened, backup)
    for job_id, body in data.items():
        assert kept.job_runs.get_result(T, E, job_id) == body
        ref = kept.job_runs.get(T, E, job_id).result  # type: ignore[union-attr]
        assert ref is not None and "dq-backup.results" in (ref.uri or "")


def test_1_gc_on_a_store_sharing_a_results_location_never_touches_another_stores_payloads(
    tmp_path: Path, opened: list[Stores]
) -> None:
    shared = (tmp_path / "shared-results").as_uri()
    first = open_at(opened, sqlite_url(tmp_path / "a.db"), results_url=shared)
    second = open_at(opened, sqlite_url(tmp_path / "b.db"), results_url=shared)
    data = seed(first)
    seed(second, runs=1)
    assert first.job_runs.store_id() != second.job_runs.store_id()
    assert second.job_runs.gc_payloads(older_than=timedelta(0)) == []
    second.job_runs.delete_with_result(T, E, "run-0")
    for job_id, body in data.items():
        assert first.job_runs.get_result(T, E, job_id) == body
    # Its own orphans are still collected.
    orphan = first.job_runs.payloads.write(  # type: ignore[union-attr]
        f"{first.job_runs.store_id()}/{T}/{E}/job_runs/run-0/result-00000000deadbeef.bin",
        b"x",
        content_type="x",
    )
    assert first.job_runs.gc_payloads(older_than=timedelta(0)) == [orphan.uri]


def test_1_a_store_from_before_identities_keeps_reading_its_shared_results_folder(
    tmp_path: Path, opened: list[Stores]
) -> None:
    # The former default: results/ beside the database, shared by every store in the folder.
    stores = open_at(opened, sqlite_url(tmp_path / "old.db"), results_url=(tmp_path / "results").as_uri())
    stores.job_runs.put(JobRun(job_id="r", tenant_id=T, environment=E, job_type="validation"))
    legacy = stores.job_runs.payloads.write(  # type: ignore[union-attr]
        f"{T}/{E}/job_runs/r/result-{sha256_hex(b'old' * 100_000)[:16]}.bin",
        b"old" * 100_000,
        content_type="application/octet-stream",
    )
    entry = stores.job_runs.get(T, E, "r")
    assert entry is not None
    from dq_stores.models import ResultRef

    ref = ResultRef(
        location="external",
        uri=legacy.uri,
        sha256=legacy.sha256,
        size_bytes=legacy.size_bytes,
        content_type="application/octet-stream",
    )
    stores.job_runs.put(entry.model_copy(update={"result": ref}))
    reopened = open_at(opened, sqlite_url(tmp_path / "old.db"))  # the new default location
    assert "old.results" in reopened.job_runs.results_location
    assert reopened.job_runs.get_result(T, E, "r") == b"old" * 100_000
    # Never collected or deleted as if it were this store's own: another store may share it.
    assert reopened.job_runs.gc_payloads(older_than=timedelta(0)) == []
    outcome = reopened.job_runs.purge_run(T, E, "r")
    assert outcome.deleted and outcome.result is not None and outcome.result.startswith("left in place")
    assert Path(legacy.uri.removeprefix("file://")).exists()


# -- 2. one configuration everywhere ----------------------------------------------------------------


@pytest.mark.postgres
def test_2_the_cli_reads_dq_stores_schema_names_the_store_and_reads_create_nothing(
    tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    contract = make_contract(T, E, "billing-contract", dataset_types=["billing"])
    (folder / "contract.json").write_bytes(contract.model_dump_json().encode())
    env: dict[str, str | None] = {"DQ_STORES_URL": pg_url, "DQ_STORES_SCHEMA": pg_schema}

    listed = run_cli("ls", "contracts", "--tenant", T, "--env", E, env=env)
    assert listed.exit_code == 1
    assert "no dq-stores tables" in listed.stderr and f"schema {pg_schema}" in listed.stderr
    assert tables_in(pg_schema) == []  # a read never creates tables

    upgraded = run_cli("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"(schema {pg_schema})" in upgraded.stdout
    imported = run_cli("import", str(folder), env=env)
    assert imported.exit_code == 0, imported.output
    assert f"(schema {pg_schema})" in imported.stdout  # says where it wrote
    with open_stores(pg_url, schema=pg_schema, use_env=False) as stores:
        assert stores.contracts.get(T, E, "billing-contract") == contract
    with open_stores(pg_url, use_env=False) as public:
        assert public.list_scopes(tenant=T) == []  # nothing went to `public`
    # The Dagster side resolves the same variables the same way.
    os.environ.update({k: v for k, v in env.items() if v is not None})
    try:
        with open_stores() as from_env:
            assert from_env.schema == pg_schema
            assert from_env.contracts.get(T, E, "billing-contract") == contract
    finally:
        for key in env:
            os.environ.pop(key, None)


def test_2_the_default_store_is_the_dagster_one_when_dagster_home_is_set(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "dq").mkdir(parents=True)
    with open_stores(sqlite_url(home / "dq" / "dq.db"), use_env=False) as stores:
        stores.contracts.put(make_contract(T, E, "c1"))
    listed = run_cli(
        "ls", "contracts", "--tenant", T, "--env", E, env={"DAGSTER_HOME": str(home), "DQ_STORES_URL": None}
    )
    assert listed.exit_code == 0, listed.output
    assert "c1" in listed.stdout
    assert str(home / "dq" / "dq.db") in listed.stderr  # names the store it used


def test_2_reads_of_a_missing_sqlite_store_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "dq.db"
    for args in (
        ("ls", "runs", "--tenant", T, "--env", E),
        ("export", str(tmp_path / "out"), "--tenant", T),
        ("purge-runs", "--older-than", "1d", "--tenant", T),
    ):
        result = run_cli("--url", sqlite_url(missing), *args)
        assert result.exit_code == 1, args
        assert "does not exist" in result.stderr
    assert not missing.parent.exists()
    assert not (tmp_path / "out").exists()


# -- 3. copy: the result or nothing ---------------------------------------------------------------


@pytest.mark.postgres
def test_3_copy_without_the_sources_results_location_copies_nothing_of_those_runs(
    tmp_path: Path, pg_url: str, pg_schema: str, opened: list[Stores]
) -> None:
    pg = pg_schema_url(pg_url, pg_schema)
    results = (tmp_path / "pg-results").as_uri()
    data = seed(open_at(opened, pg, results_url=results))
    target = tmp_path / "copy.db"
    result = run_cli("copy", "--from", pg, "--to", sqlite_url(target), "--tenant", T, "--env", E)
    assert result.exit_code == 1
    assert "copied 2, skipped 0, failed 3" in result.stdout
    assert "give --from-results-url" in result.stderr
    copied = open_at(opened, sqlite_url(target))
    assert [r.job_id for r in copied.job_runs.list_by_tenant(T, E)] == []  # no record without result
    # With the location: everything, each payload in the destination's own location.
    again = run_cli(
        "copy", "--from", pg, "--from-results-url", results, "--to", sqlite_url(target), "--tenant", T
    )
    assert again.exit_code == 0, again.output
    assert "copied 3, skipped 2, failed 0" in again.stdout
    for job_id, body in data.items():
        assert copied.job_runs.get_result(T, E, job_id) == body


@pytest.mark.postgres
def test_3_copy_into_a_store_without_a_results_location_writes_no_record_and_names_the_option(
    tmp_path: Path, pg_url: str, pg_schema: str, opened: list[Stores]
) -> None:
    source = sqlite_url(tmp_path / "dq.db")
    seed(open_at(opened, source), runs=2)
    pg = pg_schema_url(pg_url, pg_schema)
    result = run_cli("copy", "--from", source, "--to", pg, "--tenant", T, "--env", E)
    assert result.exit_code == 1
    assert "failed 2" in result.stdout
    assert "give --to-results-url" in result.stderr
    assert "results_url=" not in result.stderr
    target = open_at(opened, pg)
    assert list(target.job_runs.list_by_tenant(T, E)) == []
    # The store API refuses the same way, before writing anything.
    run = JobRun(job_id="x", tenant_id=T, environment=E, job_type="validation")
    with pytest.raises(NoResultsLocationError, match="results location"):
        target.job_runs.put_with_result(run, payload(9))
    assert target.job_runs.get(T, E, "x") is None


# -- 4. import checks everything first -------------------------------------------------------------


@pytest.mark.postgres
def test_4_import_of_an_export_checks_results_before_writing_and_dry_run_says_the_same(
    tmp_path: Path, pg_url: str, pg_schema: str, opened: list[Stores]
) -> None:
    source = sqlite_url(tmp_path / "dq.db")
    data = seed(open_at(opened, source), runs=3)
    out = tmp_path / "export"
    assert run_cli("--url", source, "export", str(out), "--tenant", T).exit_code == 0
    pg = pg_schema_url(pg_url, pg_schema)
    dry = run_cli("--url", pg, "import", str(out), "--dry-run")
    real = run_cli("--url", pg, "import", str(out))
    for result in (dry, real):
        assert result.exit_code == 1
        assert result.stderr.count("must go to a results location") == 3
        assert "give --results-url" in result.stderr
        assert "3 problem(s) in 3 file(s); nothing was written" in result.stderr
    assert tables_in(pg_schema) == []  # neither created anything, not even the tables
    results = (tmp_path / "pg-results").as_uri()
    dry_ok = run_cli("--url", pg, "--results-url", results, "import", str(out), "--dry-run")
    assert dry_ok.exit_code == 0, dry_ok.output
    assert "5 to create" in dry_ok.stdout and "does not exist yet" in dry_ok.stdout
    ok = run_cli("--url", pg, "--results-url", results, "import", str(out))
    assert ok.exit_code == 0, ok.output
    assert "5 created" in ok.stdout
    imported = open_at(opened, pg, results_url=results)
    for job_id, body in data.items():
        assert imported.job_runs.get_result(T, E, job_id) == body


def test_4_a_corrupt_exported_payload_is_found_before_anything_is_written(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path / "dq.db")
    with open_stores(source, use_env=False) as stores:
        seed(stores, runs=2)
    out = tmp_path / "export"
    assert run_cli("--url", source, "export", str(out), "--tenant", T).exit_code == 0
    victim = next(out.rglob("run-1.result.parquet"))
    victim.write_bytes(b"X" + victim.read_bytes()[1:])
    target = tmp_path / "new.db"
    result = run_cli("--url", sqlite_url(target), "import", str(out))
    assert result.exit_code == 1
    assert "does not match the sha256" in result.stderr
    assert not target.exists()


# -- 5. export holds every payload or fails --------------------------------------------------------


@pytest.mark.postgres
def test_5_export_without_the_results_location_fails_loudly_and_writes_nothing(
    tmp_path: Path, pg_url: str, pg_schema: str, opened: list[Stores]
) -> None:
    pg = pg_schema_url(pg_url, pg_schema)
    results = (tmp_path / "pg-results").as_uri()
    seed(open_at(opened, pg, results_url=results), runs=3)
    out = tmp_path / "dump"
    refused = run_cli("--url", pg, "export", str(out), "--tenant", T, "--env", E)
    assert refused.exit_code == 1
    assert refused.stderr.count("cannot export") == 3
    assert "nothing was exported" in refused.stderr
    assert not out.exists()
    ok = run_cli("--url", pg, "--results-url", results, "export", str(out), "--tenant", T, "--env", E)
    assert ok.exit_code == 0, ok.output
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(files) == 2 + 3 + 3  # two artifacts, three records, three payloads
    assert "result payload" in run_cli("export", "--help").stdout


# -- 6. every backend lists its scopes ---------------------------------------------------------------


@pytest.mark.postgres
def test_6_copy_with_a_tenant_only_or_all_scopes_works_on_sql_and_a_typo_is_an_error(
    tmp_path: Path, pg_url: str, pg_schema: str, opened: list[Stores]
) -> None:
    source = sqlite_url(tmp_path / "dq.db")
    stores = open_at(opened, source)
    seed(stores, runs=1)
    seed(stores, runs=1, environment="dev")
    seed(stores, runs=1, tenant="TNT-002")
    pg = pg_schema_url(pg_url, pg_schema)
    results = (tmp_path / "pg-results").as_uri()
    # The README's example: --tenant without --env copies each of the tenant's environments.
    by_tenant = run_cli("copy", "--from", source, "--to", pg, "--to-results-url", results, "--tenant", T)
    assert by_tenant.exit_code == 0, by_tenant.output
    assert "2 scope(s)" in by_tenant.stdout
    everything = run_cli(
        "copy",
        "--from",
        pg,
        "--from-results-url",
        results,
        "--to",
        sqlite_url(tmp_path / "all.db"),
        "--all-scopes",
    )
    assert everything.exit_code == 0, everything.output
    assert "2 scope(s)" in everything.stdout
    typo_target = tmp_path / "typo.db"
    typo = run_cli("copy", "--from", source, "--to", sqlite_url(typo_target), "--tenant", "TNT-0001")
    assert typo.exit_code == 1
    assert "no tenant 'TNT-0001'" in typo.stderr and "TNT-001, TNT-002" in typo.stderr
    assert not typo_target.exists()  # nothing created
    wrong_env = run_cli(
        "copy", "--from", source, "--to", sqlite_url(typo_target), "--tenant", T, "--env", "prd"
    )
    assert wrong_env.exit_code == 1
    assert "environments there: dev, prod" in wrong_env.stderr
    assert not typo_target.exists()


@pytest.mark.azurite
def test_6_blob_lists_its_scopes_and_all_scopes_copies_them(
    tmp_path: Path, azurite: object, blob_container: object, opened: list[Stores]
) -> None:
    url = azurite.url(blob_container.name, "dq")  # type: ignore[attr-defined]
    key = {"AZURE_STORAGE_KEY": azurite.account_key}  # type: ignore[attr-defined]
    blob = open_at(opened, url, credential=azurite.account_key)  # type: ignore[attr-defined]
    data = seed(blob, runs=2)
    seed(blob, runs=1, tenant="TNT-002", environment="dev")
    assert blob.list_scopes() == [Scope(T, E), Scope("TNT-002", "dev")]
    target = sqlite_url(tmp_path / "from-blob.db")
    result = run_cli("copy", "--from", url, "--to", target, "--all-scopes", env=key)
    assert result.exit_code == 0, result.output
    assert "copied 7, skipped 0, failed 0 (2 scope(s)" in result.stdout
    copied = open_at(opened, target)
    for job_id, body in data.items():
        assert copied.job_runs.get_result(T, E, job_id) == body


# -- 7. the demo's hints (the README examples are tests/test_readme.py) --------------------------


# -- 8. Azure from the CLI fails fast, once, and says where ----------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.azurite
def test_8_an_unreachable_account_fails_within_the_cli_budget_naming_host_and_port(
    tmp_path: Path, azurite: object
) -> None:
    port = _closed_port()
    url = f"azure-blob://127.0.0.1:{port}/devstoreaccount1/dqtest"
    key = {"AZURE_STORAGE_KEY": azurite.account_key}  # type: ignore[attr-defined]
    started = time.monotonic()
    listed = run_cli("--url", url, "ls", "runs", "--tenant", T, "--env", E, env=key)
    elapsed = time.monotonic() - started
    assert listed.exit_code == 1
    assert f"127.0.0.1:{port}" in listed.stderr and "unreachable" in listed.stderr
    # The SDK's default retries took 85 s here; the CLI's budget is about 10 s (a bound on the
    # retry policy, generous for a loaded machine - not a speed target).
    assert elapsed < 40, elapsed
    source = sqlite_url(tmp_path / "dq.db")
    with open_stores(source, use_env=False) as stores:
        seed(stores, runs=3)
    copied = run_cli("copy", "--from", source, "--to", url, "--tenant", T, env=key)
    assert copied.exit_code == 1
    assert "copy stopped after 0 copied" in copied.stderr
    assert copied.stderr.count("unreachable") == 1  # once, not once per item


@pytest.mark.azurite
def test_8_a_missing_container_is_one_error_and_not_retryable(tmp_path: Path, azurite: object) -> None:
    url = azurite.url("no-such-container", "dq")  # type: ignore[attr-defined]
    key = {"AZURE_STORAGE_KEY": azurite.account_key}  # type: ignore[attr-defined]
    source = sqlite_url(tmp_path / "dq.db")
    with open_stores(source, use_env=False) as stores:
        seed(stores, runs=3)
    copied = run_cli("copy", "--from", source, "--to", url, "--tenant", T, env=key)
    assert copied.exit_code == 1
    assert copied.stderr.count("container does not exist") == 1
    assert f"127.0.0.1:{azurite.port}" in copied.stderr  # type: ignore[attr-defined]
    from dq_stores.errors import BackendUnavailableError, StoreNotFoundError

    assert not issubclass(StoreNotFoundError, BackendUnavailableError)


def test_8_the_emulator_form_without_a_key_names_the_missing_variable() -> None:
    result = run_cli(
        "--url",
        "azure-blob://127.0.0.1:10000/devstoreaccount1/dqtest",
        "ls",
        "runs",
        "--tenant",
        T,
        "--env",
        E,
        env={
            "AZURE_STORAGE_KEY": None,
            "AZURE_STORAGE_SAS_TOKEN": None,
            "AZURE_STORAGE_CONNECTION_STRING": None,
        },
    )
    assert result.exit_code == 1
    assert "AZURE_STORAGE_KEY" in result.stderr
    assert "malformed" not in result.stderr


# -- 9. destructive commands take explicit units ----------------------------------------------------


def test_9_purge_runs_refuses_an_ambiguous_unit_and_deletes_nothing(
    tmp_path: Path, opened: list[Stores]
) -> None:
    url = sqlite_url(tmp_path / "dq.db")
    seed(open_at(opened, url), runs=2)
    refused = run_cli("--url", url, "purge-runs", "--older-than", "6m", "--tenant", T)
    assert refused.exit_code == 1
    assert "ambiguous" in refused.stderr and "min" in refused.stderr
    assert len(list(open_at(opened, url).job_runs.list_by_tenant(T))) == 2
    dry = run_cli("--url", url, "purge-runs", "--older-than", "30d", "--tenant", T, "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.count("would delete job run") == 2
    assert "from sqlite:///" in dry.stderr  # names the store


def test_get_result_of_a_foreign_location_says_which_location_to_open(
    tmp_path: Path, opened: list[Stores]
) -> None:
    url = sqlite_url(tmp_path / "dq.db")
    seed(open_at(opened, url, results_url=(tmp_path / "elsewhere").as_uri()), runs=1)
    plain = open_at(opened, url)
    with pytest.raises(NotFoundError, match=r"elsewhere.*not opened with"):
        plain.job_runs.get_result(T, E, "run-0")
