"""The ``dq-stores`` command, end to end on real SQLite files (and Postgres where marked): import
with all-or-nothing validation, ls, byte-identical exports, idempotent copies with result
payloads, retention, one-line errors, and no secret in any output."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.cli import cli
from dq_stores.errors import InvalidArtifactError
from dq_stores.models import DataContract, JobRun
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.transfer import available_scopes, detect_kind, parse_duration

FIXTURES = Path(__file__).resolve().parents[1] / "dq_stores" / "testing" / "fixtures"
SCRIPT = Path(sys.executable).with_name("dq-stores")
T, E = "TNT-001", "prod"

RUNS_YAML = """\
# two runs in one YAML file (a list), unquoted timestamps
- job_id: yaml-run-1
  tenant_id: TNT-001
  environment: prod
  job_type: profiling
  status: succeeded
  dataset_type: billing
  submitted_at: 2024-06-01T08:00:00Z
  metadata: {day: 2024-06-01}
- job_id: yaml-run-2
  tenant_id: TNT-001
  environment: prod
  job_type: cleansing
  status: running
  submitted_at: 2024-06-02T08:00:00+02:00
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def fixtures_dir(tmp_path: Path) -> Path:
    """The canonical fixtures plus a YAML file of two runs, in nested folders."""
    folder = tmp_path / "in"
    shutil.copytree(FIXTURES, folder / "canonical")
    (folder / "more").mkdir()
    (folder / "more" / "runs.yaml").write_text(RUNS_YAML)
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "junk.json").write_text("{not json")  # hidden: never read
    return folder


@pytest.fixture
def store_url(tmp_path: Path, fixtures_dir: Path) -> str:
    """A SQLite store holding the fixtures and the YAML runs."""
    url = sqlite_url(tmp_path / "a.db")
    result = run_cli("--url", url, "import", str(fixtures_dir))
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture
def opened() -> Iterator[list[Stores]]:
    handles: list[Stores] = []
    yield handles
    for stores in handles:
        stores.close()


def open_at(opened: list[Stores], url: str, **options: str) -> Stores:
    stores = open_stores(url, **options)
    opened.append(stores)
    return stores


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- import -----------------------------------------------------------------------------------------


def test_import_folder_of_json_and_yaml_is_idempotent(
    tmp_path: Path, fixtures_dir: Path, opened: list[Stores]
) -> None:
    url = sqlite_url(tmp_path / "a.db")
    first = run_cli("--url", url, "import", str(fixtures_dir))
    assert first.exit_code == 0, first.output
    assert "6 document(s)" in first.stdout
    assert "6 created, 0 updated, 0 unchanged" in first.stdout

    stores = open_at(opened, url)
    contract_doc = json.loads((FIXTURES / "data_contract.billing-contract.json").read_text())
    stored = stores.contracts.get(T, E, "billing-contract", "2.1.0")
    assert stored is not None
    assert canonical_json(stored) == canonical_json(DataContract.model_validate(contract_doc))
    yaml_run = stores.job_runs.get(T, E, "yaml-run-2")
    assert yaml_run is not None
    assert yaml_run.submitted_at == datetime(2024, 6, 2, 6, tzinfo=UTC)
    # YAML dates in free-form metadata stay text, as they would be in JSON.
    profiled = stores.job_runs.get(T, E, "yaml-run-1")
    assert profiled is not None
    assert profiled.metadata == {"day": "2024-06-01"}

    again = run_cli("--url", url, "import", str(fixtures_dir))
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 6 unchanged" in again.stdout
    quiet = run_cli("-q", "--url", url, "import", str(fixtures_dir))
    assert quiet.exit_code == 0
    assert quiet.output == ""
    assert len(stores.contracts.history(T, E, "billing-contract", "2.1.0")) == 1

    # A changed document becomes one new revision; --dry-run writes nothing.
    changed = dict(contract_doc, description="Changed.")
    (fixtures_dir / "canonical" / "data_contract.billing-contract.json").write_text(json.dumps(changed))
    dry = run_cli("--url", url, "import", "--dry-run", str(fixtures_dir))
    assert "would update contract TNT-001/prod/billing-contract@2.1.0" in dry.stdout
    assert len(stores.contracts.history(T, E, "billing-contract", "2.1.0")) == 1
    assert "1 updated" in run_cli("--url", url, "import", str(fixtures_dir)).stdout
    assert len(stores.contracts.history(T, E, "billing-contract", "2.1.0")) == 2


def test_import_with_an_invalid_file_writes_nothing_and_names_file_and_field(
    tmp_path: Path, fixtures_dir: Path, store_url: str, opened: list[Stores]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    contract = json.loads((FIXTURES / "data_contract.billing-contract.json").read_text())
    contract["version"] = "9.0.0"
    contract["datasets"][0]["columns"][0]["data_type"] = "strnig"
    (bad / "contract.json").write_text(json.dumps(contract, indent=2))
    (bad / "broken.json").write_text('{\n  "contract_id": "x",\n  "name": \n}\n')
    (bad / "broken.yaml").write_text("contract_id: c\nname: [unclosed\n")
    (bad / "profile.yaml").write_text(
        "action_profile_id: new-profile\ntenant_id: TNT-001\nenvironment: prod\nversion: 1.0\n"
        "name: P\nactions: []\n"
    )
    (bad / "good-run.json").write_text(
        json.dumps({"job_id": "never-written", "tenant_id": T, "environment": E, "job_type": "validation"})
    )

    result = run_cli("--url", store_url, "import", str(fixtures_dir), str(bad))

    assert result.exit_code == 1
    err = result.stderr
    assert "contract.json" in err
    assert "datasets.0.columns.0.data_type" in err
    assert f"{bad / 'broken.json'}:4:1: invalid JSON" in err
    assert f"{bad / 'broken.yaml'}:3:1: invalid YAML" in err
    assert "profile.yaml (action profile 'new-profile'): version:" in err
    assert "quote it in YAML" in err
    assert "nothing was written" in err
    assert "Traceback" not in err
    stores = open_at(opened, store_url)
    assert stores.contracts.get(T, E, "billing-contract", "9.0.0") is None
    assert stores.job_runs.get(T, E, "never-written") is None
    assert stores.action_profiles.get(T, E, "new-profile") is None


def test_import_refuses_a_status_change_the_store_would_refuse(
    tmp_path: Path, store_url: str, opened: list[Stores]
) -> None:
    run = json.loads((FIXTURES / "job_run.billing-validation-20240501.json").read_text())
    run["status"] = "running"  # the stored run is 'warning', a final status
    extra = {"job_id": "fresh", "tenant_id": T, "environment": E, "job_type": "validation"}
    (tmp_path / "runs.json").write_text(json.dumps([extra, run]))
    result = run_cli("--url", store_url, "import", str(tmp_path / "runs.json"))
    assert result.exit_code == 1
    assert "runs.json[1]" in result.stderr
    assert "status: the stored run is warning" in result.stderr
    assert open_at(opened, store_url).job_runs.get(T, E, "fresh") is None


def test_available_scopes_come_from_the_backend(tmp_path: Path, opened: list[Stores]) -> None:
    stores = open_at(opened, sqlite_url(tmp_path / "s.db"))
    stores.job_runs.put(JobRun(job_id="r", tenant_id="b", environment="x", job_type="validation"))
    stores.job_runs.put(JobRun(job_id="r", tenant_id="a", environment="y", job_type="validation"))
    assert available_scopes(stores) == [Scope("a", "y"), Scope("b", "x")]


def test_kind_detection() -> None:
    run = json.loads((FIXTURES / "job_run.billing-validation-20240501.json").read_text())
    assert detect_kind(run).name == "job_runs"  # it also holds job_definition_id, a reference
    with pytest.raises(InvalidArtifactError, match="none of job_id"):
        detect_kind({"name": "x"})


# -- ls ---------------------------------------------------------------------------------------------


def test_ls_table_json_and_filters(store_url: str) -> None:
    table = run_cli("--url", store_url, "ls", "contracts", "--tenant", T, "--env", E)
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == ["ID", "VERSION", "STATUS", "DATASETS", "NAME"]
    assert row.split()[:4] == ["billing-contract", "2.1.0", "approved", "billing"]
    assert header.index("VERSION") == row.index("2.1.0")  # aligned columns

    runs = run_cli("--url", store_url, "ls", "runs", "--tenant", T, "--env", E)
    lines = runs.stdout.splitlines()
    assert lines[0].split()[:5] == ["JOB_ID", "TYPE", "STATUS", "TIME", "DATASET"]
    assert [line.split()[0] for line in lines[1:]] == [
        "yaml-run-2",
        "yaml-run-1",
        "billing-validation-20240501",
    ]

    as_json = run_cli(
        "--url", store_url, "ls", "runs", "--tenant", T, "--env", E, "--json", "--job-type", "validation"
    )
    fixture = JobRun.model_validate_json((FIXTURES / "job_run.billing-validation-20240501.json").read_bytes())
    assert as_json.stdout_bytes == b"[" + canonical_json(fixture) + b"]\n"

    limited = run_cli("--url", store_url, "ls", "runs", "--tenant", T, "--env", E, "--json", "--limit", "1")
    assert [r["job_id"] for r in json.loads(limited.stdout)] == ["yaml-run-2"]
    assert "more than 1 runs" in limited.stderr

    tagged = run_cli(
        "--url", store_url, "ls", "action-profiles", "--tenant", T, "--env", E, "--tag", "alerts", "--json"
    )
    assert [p["action_profile_id"] for p in json.loads(tagged.stdout)] == ["alerts-critical-v1"]
    none = run_cli(
        "--url", store_url, "ls", "job-definitions", "--tenant", T, "--env", E, "--status", "retired"
    )
    assert none.exit_code == 0
    assert none.stdout == ""
    assert "no job-definitions" in none.stderr

    wrong = run_cli("--url", store_url, "ls", "runs", "--tenant", T, "--env", E, "--tag", "x")
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("dq-stores: error: --tag does not apply to runs")


# -- export -----------------------------------------------------------------------------------------


def test_export_is_byte_identical_and_reimportable(tmp_path: Path, store_url: str) -> None:
    a, b = tmp_path / "export-a", tmp_path / "export-b"
    # The fixtures hold a run whose result is a reference to a location this store was not
    # opened with: an export fails unless told to keep such a run's reference only.
    refused = run_cli("--url", store_url, "export", str(a), "--tenant", T, "--env", E)
    assert refused.exit_code == 1
    assert "cannot export: job run TNT-001/prod/billing-validation-20240501" in refused.stderr
    assert "nothing was exported" in refused.stderr
    assert not a.exists()
    for target in (a, b):
        result = run_cli(
            "--url", store_url, "export", str(target), "--tenant", T, "--env", E, "--allow-result-references"
        )
        assert result.exit_code == 0, result.output
        assert "warning: exported with its reference only" in result.stderr
    files = tree(a)
    assert files == tree(b)
    assert sorted(files) == [
        "TNT-001/prod/action_profiles/alerts-critical-v1/1.0.0.json",
        "TNT-001/prod/contracts/billing-contract/2.1.0.json",
        "TNT-001/prod/job_definitions/billing-daily-checks/1.0.0.json",
        "TNT-001/prod/job_runs/billing-validation-20240501.json",
        "TNT-001/prod/job_runs/yaml-run-1.json",
        "TNT-001/prod/job_runs/yaml-run-2.json",
    ]
    contract = DataContract.model_validate_json(
        (FIXTURES / "data_contract.billing-contract.json").read_bytes()
    )
    assert files["TNT-001/prod/contracts/billing-contract/2.1.0.json"] == canonical_json(contract)

    refused = run_cli(
        "--url", store_url, "export", str(a), "--tenant", T, "--env", E, "--allow-result-references"
    )
    assert refused.exit_code == 1
    assert "not empty" in refused.stderr
    (a / T / E / "job_runs" / "deleted-since.json").write_bytes(b"{}")
    over = run_cli(
        "--url",
        store_url,
        "export",
        str(a),
        "--tenant",
        T,
        "--env",
        E,
        "--overwrite",
        "--allow-result-references",
    )
    assert over.exit_code == 0
    assert "removed 1 stale file(s)" in over.stdout
    assert tree(a) == files

    copy_url = sqlite_url(tmp_path / "reimported.db")
    assert "6 created" in run_cli("--url", copy_url, "import", str(a)).stdout
    run_cli(
        "--url",
        copy_url,
        "export",
        str(tmp_path / "export-c"),
        "--tenant",
        T,
        "--env",
        E,
        "--allow-result-references",
    )
    assert tree(tmp_path / "export-c") == files

    # Every backend lists its scopes: --tenant alone exports each of the tenant's environments.
    no_env = run_cli(
        "--url", store_url, "export", str(tmp_path / "x"), "--tenant", T, "--allow-result-references"
    )
    assert no_env.exit_code == 0, no_env.stderr
    assert tree(tmp_path / "x") == files


# -- copy -------------------------------------------------------------------------------------------


def _add_results(stores: Stores) -> dict[str, bytes]:
    """An inline result and an offloaded one (a file in `results/` beside the SQLite database)."""
    small = canonical_json({"rows": 3, "ok": True})
    large = json.dumps({"values": list(range(60000))}).encode()  # over the offload threshold
    stores.job_runs.put_result(
        T, E, "yaml-run-1", small, content_type="application/json", result_type="profiling"
    )
    ref = stores.job_runs.put_result(
        T, E, "billing-validation-20240501", large, result_type="validation", offload=True
    )
    assert ref.location == "external"
    return {"yaml-run-1": small, "billing-validation-20240501": large}


def test_copy_sqlite_to_sqlite_twice_with_result_payloads(
    tmp_path: Path, store_url: str, opened: list[Stores]
) -> None:
    payloads = _add_results(open_at(opened, store_url))
    target = sqlite_url(tmp_path / "target" / "b.db")

    first = run_cli("copy", "--from", store_url, "--to", target, "--tenant", T, "--env", E)
    assert first.exit_code == 0, first.output
    assert "copied 6, skipped 0, failed 0" in first.stdout
    second = run_cli("copy", "--from", store_url, "--to", target, "--tenant", T, "--env", E)
    assert "copied 0, skipped 6, failed 0" in second.stdout

    copied = open_at(opened, target)
    for job_id, data in payloads.items():
        assert copied.job_runs.get_result(T, E, job_id) == data
        ref = copied.job_runs.get(T, E, job_id).result  # type: ignore[union-attr]
        assert ref is not None
        assert ref.sha256 == sha256_hex(data)
    external = copied.job_runs.get(T, E, "billing-validation-20240501").result  # type: ignore[union-attr]
    assert external is not None
    assert str(tmp_path / "target") in (external.uri or "")
    for url in (store_url, target):
        run_cli("--url", url, "export", str(tmp_path / f"e-{len(url)}"), "--tenant", T, "--env", E)
    exported = [tree(p) for p in sorted(tmp_path.glob("e-*"))]
    assert len(exported) == 2
    # Runs with offloaded results differ only in where the payload lives; everything else is equal.
    for rel in exported[0]:
        if "billing-validation" not in rel:
            assert exported[0][rel] == exported[1][rel], rel

    # A changed source artifact is copied again (one new revision), the rest skipped.
    source = open_at(opened, store_url)
    profile = source.action_profiles.require(T, E, "alerts-critical-v1")
    source.action_profiles.put(profile.model_copy(update={"name": "Renamed"}))
    third = run_cli("copy", "--from", store_url, "--to", target, "--tenant", T, "--env", E)
    assert "copied 1, skipped 5, failed 0" in third.stdout
    assert copied.action_profiles.require(T, E, "alerts-critical-v1").name == "Renamed"


def test_copy_from_a_missing_store_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = run_cli(
        "copy",
        "--from",
        sqlite_url(missing),
        "--to",
        sqlite_url(tmp_path / "b.db"),
        "--tenant",
        T,
        "--env",
        E,
    )
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert not missing.exists()


@pytest.mark.postgres
def test_copy_to_postgres_and_back_exports_identically(
    tmp_path: Path, store_url: str, pg_url: str, pg_schema: str
) -> None:
    secret = "s3cret-Pa55"
    pg = make_url(pg_url).set(password=secret).update_query_dict({"schema": pg_schema})
    pg_with_secret = pg.render_as_string(hide_password=False)
    assert secret in pg_with_secret

    upgraded = run_cli("db", "upgrade", "--url", pg_with_secret)
    assert upgraded.exit_code == 0, upgraded.output
    current = run_cli("db", "current", "--url", pg_with_secret, "--check")
    assert current.exit_code == 0
    assert "up to date" in current.stdout

    back = sqlite_url(tmp_path / "back.db")
    refs = "--allow-result-references"  # the fixtures' reference-only run
    outputs = [
        run_cli("copy", "--from", store_url, "--to", pg_with_secret, "--tenant", T, "--env", E, refs),
        run_cli("copy", "--from", store_url, "--to", pg_with_secret, "--tenant", T, "--env", E, refs),
        run_cli("copy", "--from", pg_with_secret, "--to", back, "--tenant", T, "--env", E, refs),
        run_cli("--url", pg_with_secret, "ls", "runs", "--tenant", T, "--env", E),
    ]
    for result in (*outputs, upgraded, current):
        assert result.exit_code == 0, result.output
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert "copied 6, skipped 0" in outputs[0].stdout
    assert "copied 0, skipped 6" in outputs[1].stdout
    assert "***" in outputs[0].stdout
    assert "copied 6, skipped 0" in outputs[2].stdout

    run_cli("--url", store_url, "export", str(tmp_path / "from-sqlite"), "--tenant", T, "--env", E, refs)
    run_cli("--url", back, "export", str(tmp_path / "round-trip"), "--tenant", T, "--env", E, refs)
    assert tree(tmp_path / "from-sqlite") == tree(tmp_path / "round-trip")
    assert len(tree(tmp_path / "round-trip")) == 6


# -- purge-runs -------------------------------------------------------------------------------------


def test_purge_runs_dry_run_then_for_real(tmp_path: Path, opened: list[Stores]) -> None:
    url = sqlite_url(tmp_path / "p.db")
    stores = open_at(opened, url)
    now = datetime.now(UTC)
    for env in ("prod", "dev"):
        for job_id, age in (("old", 400), ("recent", 30)):
            stores.job_runs.put(
                JobRun(
                    job_id=f"{job_id}-{env}",
                    tenant_id=T,
                    environment=env,
                    job_type="validation",
                    status="succeeded",
                    submitted_at=now - timedelta(days=age),
                )
            )
    ref = stores.job_runs.put_result(T, "prod", "old-prod", b"x" * 100, offload=True)
    payload_file = Path(ref.uri.removeprefix("file://")) if ref.uri else None
    assert payload_file is not None
    assert payload_file.exists()
    other_tenant = JobRun(job_id="old-other", tenant_id="OTHER", environment="prod", job_type="validation")
    stores.job_runs.put(other_tenant.model_copy(update={"submitted_at": now - timedelta(days=999)}))

    dry = run_cli("--url", url, "purge-runs", "--older-than", "365d", "--tenant", T, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert sorted(line.split()[4] for line in dry.stdout.splitlines()[:-1]) == [
        f"{T}/dev/old-dev",
        f"{T}/prod/old-prod",
    ]
    assert "would delete 2 job run(s)" in dry.stdout
    assert stores.job_runs.get(T, "prod", "old-prod") is not None

    real = run_cli("--url", url, "purge-runs", "--older-than", "365d", "--tenant", T, "--env", "prod")
    assert real.exit_code == 0, real.output
    assert "deleted job run TNT-001/prod/old-prod" in real.stdout
    assert "result: deleted" in real.stdout
    assert "deleted 1 job run(s)" in real.stdout
    assert stores.job_runs.get(T, "prod", "old-prod") is None
    assert not payload_file.exists()  # record first, then its payload
    assert stores.job_runs.get(T, "dev", "old-dev") is not None  # only --env prod
    assert stores.job_runs.get(T, "prod", "recent-prod") is not None
    assert stores.job_runs.get("OTHER", "prod", "old-other") is not None  # another tenant: untouched

    bad = run_cli("--url", url, "purge-runs", "--older-than", "soon", "--tenant", T)
    assert bad.exit_code == 1
    assert "invalid duration 'soon'" in bad.stderr


def test_parse_duration() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("90min") == timedelta(minutes=90)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("2 weeks") == timedelta(weeks=2)
    for wrong in ("", "12", "d", "0d", "-3d", "3d junk", "5x"):
        with pytest.raises(InvalidArtifactError, match=r"invalid duration|must be positive"):
            parse_duration(wrong)
    # A delete command never guesses a unit: 'm' (minutes or months?), months and years are refused.
    for ambiguous in ("6m", "90m", "6mo", "1y", "2 years", "1d6m"):
        with pytest.raises(InvalidArtifactError, match="ambiguous duration"):
            parse_duration(ambiguous)


# -- errors, secrets, the installed script ------------------------------------------------------------


def test_errors_are_one_line_and_debug_shows_the_exception(tmp_path: Path) -> None:
    broken = tmp_path / "x.json"
    broken.write_text("[1, 2")
    result = run_cli("--url", sqlite_url(tmp_path / "a.db"), "import", str(broken))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert (
        result.stderr.splitlines()[-1] == "dq-stores: error: 1 problem(s) in 1 file(s); nothing was written"
    )

    unknown = run_cli("--url", "nosuch://x", "ls", "runs", "--tenant", T, "--env", E)
    assert unknown.exit_code == 1
    assert unknown.stderr.count("\n") == 1
    assert unknown.stderr.startswith("dq-stores: error: unknown store URL")

    debug = CliRunner().invoke(
        cli, ["--debug", "--url", "nosuch://x", "ls", "runs", "--tenant", T, "--env", E]
    )
    assert isinstance(debug.exception, InvalidArtifactError)


def test_installed_script_hides_secrets_and_tracebacks(tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is not installed: pip install -e ."
    version = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.startswith("dq-stores ")

    env = {**os.environ, "DQ_STORES_URL": "postgresql://admin:hunter2-secret@127.0.0.1:1/dq"}
    proc = subprocess.run(
        [str(SCRIPT), "ls", "runs", "--tenant", T, "--env", E],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("dq-stores: error: database ")
    assert proc.stderr.count("\n") == 1
    assert "hunter2-secret" not in proc.stderr
    assert "admin:***@" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_progress_bar_only_on_a_terminal(tmp_path: Path, store_url: str) -> None:
    """On a TTY stderr the copy shows a click progress bar; under CliRunner (no TTY) it does not."""
    target = sqlite_url(tmp_path / "tty.db")
    refs = "--allow-result-references"  # the fixtures' reference-only run
    args = [str(SCRIPT), "copy", "--from", store_url, "--to", target, "--tenant", T, "--env", E, refs]
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"copying TNT-001/prod" in seen
    assert b"#" in seen
    assert b"copied 6, skipped 0, failed 0" in out

    plain = run_cli("copy", "--from", store_url, "--to", target, "--tenant", T, "--env", E, refs)
    assert "copying" not in plain.stderr and "#" not in plain.stderr
    assert "copying" not in plain.output
