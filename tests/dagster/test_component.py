"""``DataQualityComponent``: dg sees it, scaffolds it and checks it; the stores are the source of
truth (a new tenant after an import and a fresh load); one connection pool per run; layering.
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
import ast
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
)

from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes, StoresAttributes
from dq_dagster.definitions import ARTIFACTS_DIR
from dq_dagster.examples.sources import raw_billing_asset
from dq_dagster.resources import (
    ContractStoreResource,
    DQStoresResource,
    JobDefinitionStoreResource,
    JobRunStoreResource,
)
from dq_dagster.triggers.cron import due_times
from dq_stores.errors import InvalidArtifactError
from dq_stores.models import DataContract, JobDefinition
from dq_stores.transfer import apply_import, load_artifacts, plan_import

pytestmark = pytest.mark.dagster

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = "prod"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DQ_STORES_", "DAGSTER_HOME"))}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


def seed(url: str) -> None:
    artifacts, problems = load_artifacts([ARTIFACTS_DIR])
    assert problems == []
    with DQStoresResource(url=url).open() as stores:
        actions, problems = plan_import(stores, artifacts)
        assert problems == []
        list(apply_import(stores, actions))


def third_tenant_contract(folder: Path) -> Path:
    """TNT-003's billing contract: TNT-001's plus a rule the others lack (status max length 12)."""
    source = json.loads(
        (ARTIFACTS_DIR / "TNT-001" / "prod" / "contracts" / "billing-contract.json").read_text()
    )
    text = json.dumps(source).replace("TNT-001", "TNT-003")
    contract = json.loads(text)
    for column in contract["datasets"][0]["columns"]:
        if column["column_id"] == "status":
            column.setdefault("constraints", {})["max_length"] = 12
    DataContract.model_validate(contract)
    path = folder / "tnt-003" / "billing-contract.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(contract))
    return path.parent


# -- dg ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dg_lists_scaffolds_and_checks_the_component(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "myproj" / "defs").mkdir(parents=True)
    (project / "myproj" / "__init__.py").write_text("")
    (project / "myproj" / "defs" / "__init__.py").write_text("")
    (project / "dg.toml").write_text(
        'directory_type = "project"\n\n[project]\nroot_module = "myproj"\ndefs_module = "myproj.defs"\n'
    )
    (project / "myproj" / "definitions.py").write_text(
        (ROOT / "dq_dagster" / "examples" / "demo" / "definitions.py").read_text()
    )
    env = clean_env(DQ_STORES_URL=f"sqlite:///{tmp_path}/dq.db")

    def dg(*args: str) -> str:
        done = subprocess.run(
            [str(BIN / "dg"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "dq_dagster.DataQualityComponent" in dg("list", "components")
    dg("scaffold", "defs", "dq_dagster.DataQualityComponent", "quality")
    written = project / "myproj" / "defs" / "quality"
    spec = yaml.safe_load((written / "defs.yaml").read_text())
    assert spec["type"] == "dq_dagster.DataQualityComponent"
    assert spec["attributes"]["tenants"] == "from_store"
    done = subprocess.run(
        [str(BIN / "dq-stores"), "-q", "import", str(written / "contracts")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "All definitions loaded successfully" in dg("check", "defs")
    listed = json.loads(dg("list", "defs", "--json"))
    text = json.dumps(listed)
    for name in (
        "amount__min_value",
        "currency__allowed_values",
        "orders_dq_pipeline",
        "dq_scheduled_job_definitions",
    ):
        assert name in text, name
    assert len(listed["asset_checks"]) == 9


@pytest.mark.slow
def test_dg_check_defs_on_the_demo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    seed(url)
    done = subprocess.run(
        [str(BIN / "dg"), "check", "defs"],
        cwd=ROOT,
        env=clean_env(DQ_STORES_URL=url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


# -- the stores are the source of truth ---------------------------------------------------------------

LOAD_IN_FRESH_PROCESS = """
import json
from dagster import AssetKey
from dq_dagster.definitions import defs
graph = defs.resolve_asset_graph()
node = graph.get(AssetKey("billing_cleansed"))
cleansing = next(a for a in defs.assets if AssetKey("billing_cleansed") in a.keys)
print(json.dumps({
    "partitions": node.partitions_def.get_partition_keys(),
    "checks": sorted(k.name for k in cleansing.check_keys),
}))
"""


@pytest.mark.slow
def test_a_third_tenant_imported_shows_up_in_a_fresh_process_and_materializes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    seed(url)
    env = clean_env(DQ_STORES_URL=url)

    def fresh_load() -> dict[str, list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", LOAD_IN_FRESH_PROCESS],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        loaded: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
        return loaded

    before = fresh_load()
    assert before["partitions"] == ["TNT-001", "TNT-002"]
    assert "status__max_length" not in before["checks"]

    done = subprocess.run(
        [str(BIN / "dq-stores"), "-q", "import", str(third_tenant_contract(tmp_path))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    after = fresh_load()  # no code change: a new load reads the stores
    assert after["partitions"] == ["TNT-001", "TNT-002", "TNT-003"]
    assert set(after["checks"]) == {*before["checks"], "status__max_length"}

    # Materialize the new partition, and an old one: each run reports its own tenant's rules; the
    # rule TNT-001's contract lacks is skipped there (no evaluation), never passed.
    stores = DQStoresResource(url=url)
    component = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type="billing", source=SourceAttributes(asset="raw_billing"))]
    )
    state = component.read_state(stores)
    tenants = sorted(state.datasets["billing"].tenants)
    defs = Definitions.merge(
        component.build_defs_for_state(state, backend=stores),
        Definitions(assets=[raw_billing_asset(StaticPartitionsDefinition(tenants))]),
    )
    job = defs.resolve_job_def("billing_dq_pipeline")
    with DagsterInstance.ephemeral() as instance:
        new = job.execute_in_process(
            partition_key="TNT-003", instance=instance, tags={"dq/job_definition_id": "x"}
        )
        old = job.execute_in_process(partition_key="TNT-001", instance=instance)
    assert new.success and old.success
    new_checks = {e.check_name: e for e in new.get_asset_check_evaluations()}
    old_checks = {e.check_name for e in old.get_asset_check_evaluations()}
    assert new_checks["status__max_length"].passed  # generated statuses are short
    assert "status__max_length" not in old_checks and len(old_checks) == len(new_checks) - 1
    with stores.open() as opened:
        runs = list(opened.job_runs.list_by_tenant("TNT-003", ENV))
    assert {r.orchestrator.asset_key for r in runs if r.orchestrator} == {
        "billing_cleansed",
        "billing_cleansing_report",
        "billing_profile",
        "billing_validation",
    }
    # The job definition recorded is the run's tag, never one fixed in code.
    assert {r.job_definition_id for r in runs} == {"x"}


def test_loading_state_does_not_query_per_rule(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    seed(url)
    stores = DQStoresResource(url=url)
    calls: list[str] = []
    component = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type="billing", source=SourceAttributes(asset="raw_billing"))]
    )
    with stores.open() as opened:
        original = opened.contracts.get_latest_for_dataset

        def counting(*args: object, **kwargs: object) -> object:
            calls.append("latest")
            return original(*args, **kwargs)  # type: ignore[arg-type]

        opened.contracts.get_latest_for_dataset = counting  # type: ignore[method-assign]
        from dq_dagster.discovery import contracts_by_tenant

        found = contracts_by_tenant(opened, ENV, ["billing"])
    assert sorted(found["billing"]) == ["TNT-001", "TNT-002"]
    assert len(calls) == 2  # one per tenant and dataset, whatever the number of rules
    assert sorted(component.read_state(stores).datasets["billing"].tenants) == ["TNT-001", "TNT-002"]


# -- one connection pool per run ---------------------------------------------------------------------


@pytest.mark.postgres
def test_a_run_using_three_store_resources_holds_one_connection(pg_url: str, pg_schema: str) -> None:
    app = f"dq-{uuid.uuid4().hex[:12]}"
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    stores = DQStoresResource(url=f"{pg_url}?application_name={app}", schema=pg_schema)
    seed_with = DQStoresResource(url=pg_url, schema=pg_schema)
    artifacts, _ = load_artifacts([ARTIFACTS_DIR])
    with seed_with.open(shared=False) as opened:
        actions, problems = plan_import(opened, artifacts)
        assert problems == []
        list(apply_import(opened, actions))
    component = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type="billing", source=SourceAttributes(asset="raw_billing"))]
    )
    state = component.read_state(seed_with)
    partitions = StaticPartitionsDefinition(sorted(state.datasets["billing"].tenants))

    def ours() -> int:
        with psycopg.connect(plain) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
        return int(row[0]) if row else -1

    seen: dict[str, int] = {}

    @asset(deps=[AssetKey("billing_profile"), AssetKey("billing_validation")], partitions_def=partitions)
    def probe(
        context: AssetExecutionContext,
        contracts: ContractStoreResource,
        job_definitions: JobDefinitionStoreResource,
        job_runs: JobRunStoreResource,
    ) -> None:
        # Three tenant-bound resources and the IO manager (which wrote the upstream results), each
        # on the same DQStoresResource: Dagster initialised it once per dependent resource.
        assert contracts.for_context(context).get_latest_for_dataset("billing") is not None
        job_definitions.for_context(context).list(limit=1)
        assert job_runs.for_context(context).list(limit=10).items
        seen["during"] = ours()

    defs = Definitions.merge(
        component.build_defs_for_state(state, backend=stores),
        Definitions(
            assets=[raw_billing_asset(partitions), probe],
            jobs=[define_asset_job("everything", selection="*")],
        ),
    )
    job = defs.resolve_job_def("everything")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key="TNT-001", instance=instance)
    assert result.success
    assert seen["during"] == 1  # one pool, one connection, for every user of the run
    assert ours() == 0  # closed when the last user left


def test_shared_stores_are_counted_and_closed_by_the_last_user(tmp_path: Path) -> None:
    from dq_stores.shared import shared_stores

    stores = DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    key = stores.cache_key()
    leases = [shared_stores.acquire(key, stores.open_unshared) for _ in range(3)]
    assert leases[0].stores is leases[1].stores is leases[2].stores
    assert shared_stores.users(key) == 3
    other = DQStoresResource(url=f"sqlite:///{tmp_path}/other.db")
    assert other.cache_key() != key  # another configuration, another pool
    for lease in leases:
        lease.release()
        lease.release()  # idempotent
    assert shared_stores.users(key) == 0 and key not in shared_stores.open_keys()
    with stores.open() as first, stores.open() as second:
        assert first is second


# -- layering -------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_imports_dagster_private_api() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("dq_stores", "dq_dagster", "bench")
        for path in (ROOT / folder).rglob("*.py")
        for name in _imports(path)
        if name.startswith("dagster._") or name.startswith("dagster_shared")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "package",
    [
        "dq_dagster/engine",
        "dq_dagster/actions/core.py",
        "dq_dagster/actions/payloads.py",
        "dq_dagster/actions/delivery.py",
        "dq_dagster/actions/executor.py",
        "dq_dagster/triggers/request.py",
        "dq_dagster/triggers/cron.py",
        "dq_dagster/triggers/schedules.py",
        "dq_dagster/triggers/blob.py",
        "dq_dagster/discovery.py",
        "dq_stores",
    ],
)
def test_pure_cores_import_no_dagster(package: str) -> None:
    target = ROOT / package
    paths = [target] if target.is_file() else list(target.rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in paths
        for name in _imports(path)
        if name.split(".")[0] in {"dagster", "dagster_azure", "dagster_postgres"}
        or name in {"dq_dagster.resources", "dq_dagster.component"}
        or name.endswith(".sensors")
    ]
    assert offenders == []
    # And importing them really loads no Dagster (the package __init__ files are lazy).
    module = package.removesuffix(".py").replace("/", ".")
    code = f"import sys, {module}; print('dagster' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# -- cron: the same times Dagster's own schedules fire at -------------------------------------------


CRONS = [
    "30 2 * * *",
    "0 * * * *",
    "*/20 * * * *",
    "15 1 * * *",
    "0 2 * * 0",
    "0 0 1 * *",
    "45 2 * * 1-5",
    "0 1,2,3 * * *",
    "0 0 29 2 *",
]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC", "America/Sao_Paulo"]
STARTS = [
    datetime(2024, 3, 1, tzinfo=UTC),
    datetime(2024, 10, 20, tzinfo=UTC),
    datetime(2025, 3, 28, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", ZONES)
def test_due_times_match_dagsters_schedules_across_dst(zone: str) -> None:
    # The oracle is the iterator Dagster's schedule daemon uses (a test may import Dagster's
    # internals to compare with them; our packages never do, see above).
    from dagster._utils.schedules import cron_string_iterator

    for start in STARTS:
        end = start + timedelta(days=45)
        for cron in CRONS:
            theirs = []
            for moment in cron_string_iterator(start.timestamp(), cron, zone):
                moment = moment.astimezone(UTC)
                if moment <= start:
                    continue
                if moment > end:
                    break
                theirs.append(moment)
            assert list(due_times(cron, zone, start, end)) == theirs, (zone, start, cron)


def test_a_cron_that_never_fires_is_refused_at_import(tmp_path: Path) -> None:
    definition = json.loads(
        (ARTIFACTS_DIR / "TNT-001" / "prod" / "job_definitions" / "billing-daily-profiling.json").read_text()
    )
    definition["trigger"]["cron"] = "0 0 31 2 *"
    with pytest.raises(ValueError, match="never fires"):
        JobDefinition.model_validate(definition)
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "bad.json").write_text(json.dumps(definition))
    done = subprocess.run(
        [str(BIN / "dq-stores"), "--url", f"sqlite:///{tmp_path}/dq.db", "import", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "never fires" in done.stderr and ".cron" in done.stderr
    with pytest.raises(InvalidArtifactError, match="never fires"):
        list(
            due_times(
                "0 0 30 2 *", "UTC", start := datetime(2024, 1, 1, tzinfo=UTC), start + timedelta(days=1)
            )
        )
    assert AssetKey  # (imported for the fresh-process script's parity)


# -- manual launches, unserved tenants, cancelled runs ----------------------------------------------


class _Hook:
    """A local webhook receiver: the JSON bodies it was sent."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies: list[dict[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _manual_definition(tenant: str) -> dict[str, object]:
    path = ARTIFACTS_DIR / "TNT-001" / "prod" / "job_definitions" / "billing-daily-profiling.json"
    doc = json.loads(path.read_text().replace("TNT-001", tenant))
    doc.update(
        job_definition_id="billing-manual",
        name="Billing checks on demand",
        job_types=["validation", "cleansing", "profiling"],
        trigger={"trigger_type": "MANUAL"},
        on_failure={"action_profile_id": "hook"},
        on_success={"action_profile_id": "hook"},
        on_anomaly=None,
    )
    return doc


def test_a_launch_with_only_a_partition_records_the_manual_definition_and_gets_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import build_sensor_context

    from dq_dagster.definitions import build_definitions

    url = f"sqlite:///{tmp_path}/dq.db"
    seed(url)
    stores = DQStoresResource(url=url)
    hook = _Hook()
    monkeypatch.setenv("DQ_ACTION_HOOK", hook.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        with stores.open(shared=False) as opened:
            opened.job_definitions.put(JobDefinition.model_validate(_manual_definition("TNT-001")))
            opened.action_profiles.put(
                {
                    "action_profile_id": "hook",
                    "name": "hook",
                    "tenant_id": "TNT-001",
                    "environment": ENV,
                    "version": "1.0.0",
                    "actions": [{"action_type": "CALL_WEBHOOK", "parameters": {"url_env": "DQ_ACTION_HOOK"}}],
                }
            )
        defs = build_definitions(stores)
        job = defs.resolve_job_def("billing_dq_pipeline")
        sensors = {
            name: defs.get_sensor_def(name) for name in ("dq_actions_on_success", "dq_actions_on_failure")
        }
        cursors: dict[str, str | None] = {}
        with DagsterInstance.ephemeral() as instance:

            def tick(name: str) -> None:
                with build_sensor_context(
                    instance=instance,
                    cursor=cursors.get(name),
                    resources={"dq_stores": stores},
                    repository_def=defs.get_repository_def(),
                ) as context:
                    cursors[name] = sensors[name].evaluate_tick(context).cursor

            for name in sensors:
                tick(name)  # the first tick only sets the cursor
            # What the launchpad sends for "Materialize all" of one partition: no dq/* tag, no config.
            result = job.execute_in_process(partition_key="TNT-001", instance=instance)
            assert result.success
            shown = result.asset_materializations_for_node("billing_validation")[0].metadata
            # What the UI shows comes from the run: its definition and the profile it selects.
            assert shown["dq/job_definition_id"].value == "billing-manual"
            assert shown["dq/outcome"].value == "failure"
            assert shown["dq/action_profile"].value == "hook@1.0.0 (on_failure)"
            assert shown["dq/actions"].value == "CALL_WEBHOOK"
            for name in sensors:
                tick(name)
        with stores.open(shared=False) as opened:
            runs = opened.job_runs.list("TNT-001", ENV, dagster_run_id=result.run_id).items
        assert {r.job_definition_id for r in runs} == {"billing-manual"}
        # The raw delivery has defects: the validation failed, so on_failure ran, once, for the run.
        assert len(hook.bodies) == 1
        body = hook.bodies[0]
        assert body["event"] == "failure"
        assert body["job_definition"]["id"] == "billing-manual"  # type: ignore[index]
        assert all(o.status == "succeeded" for r in runs for o in r.actions)
    finally:
        hook.close()


def test_the_schedule_sensor_names_a_tenant_it_does_not_serve(tmp_path: Path) -> None:
    from dagster import build_sensor_context

    from dq_dagster.definitions import build_definitions

    url = f"sqlite:///{tmp_path}/dq.db"
    seed(url)
    stores = DQStoresResource(url=url)
    defs = build_definitions(stores)  # loaded before TNT-004 exists
    third_tenant = json.loads(
        (ARTIFACTS_DIR / "TNT-001" / "prod" / "contracts" / "billing-contract.json")
        .read_text()
        .replace("TNT-001", "TNT-004")
    )
    definition = json.loads(
        (ARTIFACTS_DIR / "TNT-001" / "prod" / "job_definitions" / "billing-daily-profiling.json")
        .read_text()
        .replace("TNT-001", "TNT-004")
    )
    with stores.open(shared=False) as opened:
        opened.contracts.put(DataContract.model_validate(third_tenant))
        opened.job_definitions.put(JobDefinition.model_validate(definition))
    sensor = defs.get_sensor_def("dq_scheduled_job_definitions")
    with (
        DagsterInstance.ephemeral() as instance,
        build_sensor_context(
            instance=instance, resources={"dq_stores": stores}, repository_def=defs.get_repository_def()
        ) as context,
    ):
        data = sensor.evaluate_tick(context)
    assert not data.run_requests
    assert "TNT-004" in (data.skip_message or "") and "reload the code location" in (data.skip_message or "")
    # A fresh load serves it.
    assert (
        "TNT-004"
        in build_definitions(stores)
        .resolve_job_def("billing_dq_pipeline")
        .partitions_def.get_partition_keys()
    )  # type: ignore[union-attr]


def test_a_cancelled_run_is_a_failure_for_the_actions() -> None:
    from dq_dagster.actions import ActionEvent, classify

    event, reasons = classify([], [], run_cancelled=True)
    assert (event, reasons) == (ActionEvent.FAILURE, ["the Dagster run was cancelled"])
    from dq_dagster.definitions import build_definitions  # noqa: F401  (the sensors exist on the demo)


# -- a table source: validated and profiled where it lives ------------------------------------------


@pytest.mark.postgres
def test_a_table_source_is_validated_and_profiled_in_place_end_to_end(
    pg_url: str, make_pg_schema: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from bench.sqldata import load_frame
    from dq_dagster.examples.generator import generate_billing
    from dq_stores.registry import open_stores

    data_schema = make_pg_schema()  # type: ignore[operator]
    store_url = f"sqlite:///{tmp_path / 'dq.db'}"
    seed(store_url)
    engine = sa.create_engine(pg_url)
    try:
        for tenant in ("TNT-001", "TNT-002"):
            frame, _ = generate_billing(2_000, seed=3, tenant=tenant)
            load_frame(engine, f"billing_{tenant}", frame, schema=data_schema)
    finally:
        engine.dispose()
    monkeypatch.setenv("DQ_TEST_SOURCE_URL", pg_url)  # the connection comes from the environment
    component = DataQualityComponent(
        stores=StoresAttributes(url=store_url),
        datasets=[
            DatasetAttributes(
                dataset_type="billing",
                source=SourceAttributes(
                    table=f"{data_schema}.billing_{{tenant}}", connection_env="DQ_TEST_SOURCE_URL"
                ),
            )
        ],
    )
    state = component.read_state()
    defs = component.build_defs_for_state(state)
    job = defs.resolve_job_def("billing_dq_pipeline")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key="TNT-002", instance=instance)
    assert result.success
    materialized = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert set(materialized) == {
        "billing_validation",
        "billing_cleansed",
        "billing_cleansing_report",
        "billing_profile",
    }
    assert materialized["billing_validation"]["dq/engine"].value == "sql:postgresql"  # type: ignore[attr-defined]
    # With cleansing in the jobs, the profile describes the cleansed data (in memory).
    assert materialized["billing_profile"]["dq/engine"].value == "polars"  # type: ignore[attr-defined]
    with open_stores(store_url, use_env=False) as stores:
        runs = {r.job_type.value: r for r in stores.job_runs.list_by_tenant("TNT-002", ENV)}
        assert runs["validation"].metadata["engine"] == "sql:postgresql"
        report = stores.job_runs.get_result_model("TNT-002", ENV, runs["validation"].job_id)
        assert report.row_count == 2_000
        assert report.metadata["engine"] == "sql:postgresql"
    # The source is an external asset: not materializable, nothing copies the table out.
    specs = {s.key: s for s in defs.resolve_all_asset_specs()}
    assert AssetKey("billing_source") in specs
    assert AssetKey("billing_source") not in job.asset_layer.selected_asset_keys
    # Validation and profiling only: both run inside the database.
    in_place = DataQualityComponent(
        stores=StoresAttributes(url=store_url),
        datasets=[
            DatasetAttributes(
                dataset_type="billing",
                source=SourceAttributes(
                    table=f"{data_schema}.billing_{{tenant}}", connection_env="DQ_TEST_SOURCE_URL"
                ),
                jobs=["validation", "profiling"],
            )
        ],
    )
    job = in_place.build_defs_for_state(state).resolve_job_def("billing_dq_pipeline")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key="TNT-001", instance=instance)
    assert result.success
    engines = {
        e.asset_key.to_user_string(): e.materialization.metadata["dq/engine"].value  # type: ignore[attr-defined]
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert engines == {"billing_validation": "sql:postgresql", "billing_profile": "sql:postgresql"}
    bad = DataQualityComponent(
        datasets=[
            DatasetAttributes(
                dataset_type="billing",
                source=SourceAttributes(table="a.b.c", connection_env="X"),
            )
        ]
    )
    with pytest.raises(InvalidArtifactError, match="table"):
        bad.build_defs_for_state(state)
    with pytest.raises(InvalidArtifactError, match="password"):
        DataQualityComponent(
            datasets=[
                DatasetAttributes(
                    dataset_type="billing",
                    source=SourceAttributes(table="s.t", connection="postgresql://u:secret@h/db"),
                )
            ]
        ).build_defs_for_state(state)
