"""``deploy/dagster.yaml`` (the production instance example) loaded as is against the real Postgres.

The file is copied unchanged into a temporary DAGSTER_HOME; only the environment variables it
names point at the local server and a fresh uuid-named database (dagster-postgres wants a database
of its own; it is dropped afterwards). The tests check that the instance really is the Postgres one
(run, event-log and schedule storage, the psycopg2 driver, the queued run coordinator), that a
materialization of the demo graph lands in that database and reads back through the instance,
and that every variable the file reads is documented in its header.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from tests.plugins.postgres import PG_DSN

pytestmark = [pytest.mark.postgres, pytest.mark.dagster]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"


def env_vars_read(node: object) -> set[str]:
    """Every ``{env: NAME}`` in a parsed dagster.yaml."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        return set().union(*(env_vars_read(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_vars_read(value) for value in node))
    return set()


@pytest.fixture
def dagster_database(pg_url: str) -> Iterator[str]:
    """A fresh database for Dagster's own tables; dropped (connections and all) afterwards."""
    name = f"dq_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def production_home(tmp_path: Path, dagster_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml verbatim, its variables set for the local server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_YAML, home / "dagster.yaml")
    server = conninfo_to_dict(PG_DSN)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", str(server.get("host", "127.0.0.1")))
    monkeypatch.setenv("DAGSTER_PG_PORT", str(server.get("port", 5432)))
    monkeypatch.setenv("DAGSTER_PG_USER", str(server.get("user", "postgres")))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", str(server.get("password", "")))
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_database)
    return home


def test_every_variable_the_file_reads_is_documented() -> None:
    text = DEPLOY_YAML.read_text()
    header = text.split("\nstorage:", 1)[0]
    documented = set(re.findall(r"^#\s+(DAGSTER_[A-Z_]+)\s", header, flags=re.MULTILINE))
    assert env_vars_read(yaml.safe_load(text)) == documented


def test_instance_is_the_postgres_one(production_home: Path, dagster_database: str) -> None:
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with DagsterInstance.get() as instance:  # reads $DAGSTER_HOME/dagster.yaml, as dagster does
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        # The driver dagster-postgres is written for (see the comment on `scheme` in the file).
        url = make_url(instance.run_storage.postgres_url)
        assert (url.drivername, url.database) == ("postgresql+psycopg2", dagster_database)


def test_demo_pipeline_runs_on_the_postgres_instance_and_reads_back(
    production_home: Path, dagster_database: str, pg_url: str, pg_schema: str
) -> None:
    """Production shape: Dagster's instance on Postgres (this file), the DQ stores on Postgres
    too (their own schema), one tenant partition of the demo pipeline."""
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

    from dq_dagster.definitions import ARTIFACTS_DIR, ENVIRONMENT, build_definitions
    from dq_dagster.resources import DQStoresResource
    from dq_stores.registry import open_stores
    from dq_stores.transfer import apply_import, load_artifacts, plan_import

    tenant = "TNT-001"
    with open_stores(pg_url, schema=pg_schema) as stores:
        artifacts, problems = load_artifacts([ARTIFACTS_DIR])
        assert not problems
        actions, problems = plan_import(stores, artifacts)
        assert not problems
        list(apply_import(stores, actions))

    defs = build_definitions(DQStoresResource(url=pg_url, schema=pg_schema))
    job = defs.resolve_job_def("billing_dq_pipeline")
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=tenant,
            run_config={"ops": {"raw_billing": {"config": {"rows": 2000}}}},
        )
        assert result.success
        run_id = result.run_id

    # A fresh instance (as the webserver or daemon would open) reads the run from Postgres.
    with DagsterInstance.get() as instance:
        records = instance.get_run_records(RunsFilter(run_ids=[run_id]))
        assert [(r.dagster_run.status, r.dagster_run.tags.get("dagster/partition")) for r in records] == [
            (DagsterRunStatus.SUCCESS, tenant)
        ]
        event = instance.get_latest_materialization_event(AssetKey("billing_validation"))
        assert event is not None and event.run_id == run_id
        materialization = event.asset_materialization
        assert materialization is not None and materialization.partition == tenant
        job_run_id = materialization.metadata["dq/job_run_id"].value
        assert isinstance(job_run_id, str)
        pass_rate = materialization.metadata["dq/pass_rate"].value

    # ... and the rows really are in the database this file named, not in a local fallback.
    with psycopg.connect(PG_DSN, dbname=dagster_database) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        materialized = conn.execute(
            "SELECT asset_key, partition FROM event_logs"
            " WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        ).fetchall()
    assert runs == (1,)
    assert sorted((json.loads(key)[0], partition) for key, partition in materialized) == sorted(
        (key.to_user_string(), tenant) for key in job.asset_layer.selected_asset_keys
    )

    # The job run the UI links to is in the DQ store, with the pass rate the UI charts.
    with open_stores(pg_url, schema=pg_schema) as stores:
        job_run = stores.job_runs.get(tenant, ENVIRONMENT, job_run_id)
        assert job_run is not None and job_run.orchestrator is not None
        assert job_run.orchestrator.run_id == run_id
        assert job_run.summary is not None and job_run.summary.pass_rate == pytest.approx(pass_rate)
