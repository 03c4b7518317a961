"""The store resources in real Dagster runs (``materialize``, in process) on SQLite and Postgres.

Covers: assets reading contracts, job definitions, action profiles and job runs through
tenant-bound resources; the tenant a partition names (single key or a ``tenant`` dimension);
tenants refused by the binding; the default SQLite location; the resource lifecycle; and that no
secret reaches Dagster's run config, job snapshot or event log. The scoped views and the tenant
policy underneath are tested here too, without Dagster.
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    DagsterResourceFunctionError,
    EnvVar,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
)
from dagster._serdes import serialize_value

from dq_dagster.resources import (
    ActionProfileStoreResource,
    ContractStoreResource,
    DQStoresResource,
    JobDefinitionStoreResource,
    JobRunStoreResource,
    default_stores_url,
    partition_tenant,
)
from dq_dagster.scoped import (
    ScopedContractStore,
    ScopedJobRunStore,
    TenantNotAllowedError,
    TenantPolicy,
)
from dq_stores.errors import InvalidArtifactError, ScopeViolationError, StoreError
from dq_stores.registry import open_stores
from dq_stores.scope import Scope
from dq_stores.testing.builders import make_action_profile, make_contract, make_job_definition, make_run

pytestmark = pytest.mark.dagster

ENV = "prod"


def _seed(url: str, schema: str | None, tenants: tuple[str, ...] = ("acme", "globex")) -> None:
    """Each tenant gets its own billing contract (name says whose), job definitions and profiles."""
    options = {"schema": schema} if schema else {}
    with open_stores(url, **options) as stores:
        for tenant in tenants:
            stores.contracts.put(
                make_contract(tenant, ENV, "billing-contract", "1.0.0", dataset_types=["billing"])
            )
            stores.contracts.put(
                make_contract(
                    tenant,
                    ENV,
                    "billing-contract",
                    "1.10.0",
                    name=f"{tenant} billing",
                    dataset_types=["billing"],
                )
            )
            stores.job_definitions.put(make_job_definition(tenant, ENV, "daily", tags=["daily", "billing"]))
            stores.job_definitions.put(make_job_definition(tenant, ENV, "weekly", tags=["weekly"]))
            stores.action_profiles.put(
                make_action_profile(tenant, ENV, "alerts", action_types=["SEND_NOTIFICATION"])
            )
            stores.action_profiles.put(
                make_action_profile(tenant, ENV, "lineage", action_types=["EMIT_LINEAGE"])
            )
            stores.job_runs.put(make_run(tenant, ENV, f"{tenant}-run-1", asset_key="billing/invoices"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> DQStoresResource:
    """A DQStoresResource on a fresh SQLite file or a fresh Postgres schema, seeded."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path}/dq.db", None
        resource = DQStoresResource(url=url)
    else:
        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")
        resource = DQStoresResource(url=url, schema=schema)
    _seed(url, schema)
    return resource


def _bound(backend: DQStoresResource, **binding: Any) -> dict[str, Any]:
    return {
        "contracts": ContractStoreResource(backend=backend, environment=ENV, **binding),
        "job_definitions": JobDefinitionStoreResource(backend=backend, environment=ENV, **binding),
        "action_profiles": ActionProfileStoreResource(backend=backend, environment=ENV, **binding),
        "job_runs": JobRunStoreResource(backend=backend, environment=ENV, **binding),
    }


# -- in Dagster runs ----------------------------------------------------------------------------


def test_assets_read_every_store_through_tenant_bound_resources(backend: DQStoresResource) -> None:
    seen: dict[str, Any] = {}

    @asset
    def billing_checks(
        contracts: ContractStoreResource,
        job_definitions: JobDefinitionStoreResource,
        action_profiles: ActionProfileStoreResource,
        job_runs: JobRunStoreResource,
    ) -> None:
        latest = contracts.get_latest_for_dataset("billing")
        assert latest is not None
        seen["contract"] = (latest.name, latest.version)
        seen["pinned"] = contracts.require("billing-contract", version="1.0.0").version
        seen["versions"] = contracts.versions("billing-contract")
        seen["jobs"] = sorted(j.job_definition_id for j in job_definitions.list_by_tags(["billing"]))
        seen["profiles"] = [p.action_profile_id for p in action_profiles.list_by_type("EMIT_LINEAGE")]
        seen["runs"] = [r.job_id for r in job_runs.list(asset_key="billing/invoices")]
        job_runs.put(make_run("acme", ENV, "written-in-run", asset_key="billing/invoices"))

    result = materialize([billing_checks], resources=_bound(backend, tenant="acme"))
    assert result.success
    assert seen == {
        "contract": ("acme billing", "1.10.0"),
        "pinned": "1.0.0",
        "versions": ["1.10.0", "1.0.0"],
        "jobs": ["daily"],
        "profiles": ["lineage"],
        "runs": ["acme-run-1"],
    }
    with backend.open() as stores:
        assert stores.job_runs.get("acme", ENV, "written-in-run") is not None


def test_a_tenant_partitioned_asset_gets_its_partitions_tenant(backend: DQStoresResource) -> None:
    seen: dict[str, str] = {}

    @asset(partitions_def=StaticPartitionsDefinition(["acme", "globex"]))
    def per_tenant(context: AssetExecutionContext, contracts: ContractStoreResource) -> None:
        scoped = contracts.for_context(context)
        assert scoped.tenant == context.partition_key
        seen[context.partition_key] = scoped.require_latest_for_dataset("billing").name

    resources = _bound(backend, allowed_tenants=["acme", "globex"])
    for tenant in ("acme", "globex"):
        assert materialize([per_tenant], partition_key=tenant, resources=resources).success
    assert seen == {"acme": "acme billing", "globex": "globex billing"}


def test_a_multi_partition_with_a_tenant_dimension_selects_the_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    _seed(url, None)
    seen: list[tuple[str, str]] = []
    partitions = MultiPartitionsDefinition(
        {
            "tenant": StaticPartitionsDefinition(["acme", "globex"]),
            "day": StaticPartitionsDefinition(["d1", "d2"]),
        }
    )

    @asset(partitions_def=partitions)
    def per_tenant_day(context: AssetExecutionContext, job_runs: JobRunStoreResource) -> None:
        scoped = job_runs.for_context(context)
        seen.append((scoped.tenant, next(r.job_id for r in scoped.list())))

    from dagster import MultiPartitionKey

    resources = {"job_runs": JobRunStoreResource(backend=DQStoresResource(url=url), environment=ENV)}
    key = MultiPartitionKey({"tenant": "globex", "day": "d2"})
    assert materialize([per_tenant_day], partition_key=key, resources=resources).success
    assert seen == [("globex", "globex-run-1")]


def test_a_tenant_outside_the_binding_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    _seed(url, None, tenants=("acme", "globex", "initech"))

    @asset(partitions_def=StaticPartitionsDefinition(["acme", "globex", "initech"]))
    def per_tenant(context: AssetExecutionContext, contracts: ContractStoreResource) -> None:
        contracts.for_context(context).get_latest_for_dataset("billing")

    backend = DQStoresResource(url=url)
    allow_two = {
        "contracts": ContractStoreResource(
            backend=backend, environment=ENV, allowed_tenants=["acme", "globex"]
        )
    }
    assert materialize([per_tenant], partition_key="globex", resources=allow_two).success
    with pytest.raises(TenantNotAllowedError, match="tenant 'initech' is not allowed here"):
        materialize([per_tenant], partition_key="initech", resources=allow_two)

    # Bound to one tenant with no allow list: every other tenant is refused.
    bound = {"contracts": ContractStoreResource(backend=backend, environment=ENV, tenant="acme")}
    assert materialize([per_tenant], partition_key="acme", resources=bound).success
    with pytest.raises(TenantNotAllowedError, match="bound to tenant 'acme'"):
        materialize([per_tenant], partition_key="globex", resources=bound)


def test_an_unpartitioned_asset_without_a_bound_tenant_gets_a_clear_error(tmp_path: Path) -> None:
    @asset
    def no_tenant(contracts: ContractStoreResource) -> None:
        contracts.get("billing-contract")

    resources = {
        "contracts": ContractStoreResource(
            backend=DQStoresResource(url=f"sqlite:///{tmp_path}/x.db"), environment=ENV
        )
    }
    with pytest.raises(TenantNotAllowedError, match="not bound to a tenant"):
        materialize([no_tenant], resources=resources)


def test_a_bad_binding_fails_at_resource_start_up(tmp_path: Path) -> None:
    @asset
    def anything(contracts: ContractStoreResource) -> None:
        raise AssertionError("must not run")

    bad = ContractStoreResource(
        backend=DQStoresResource(url=f"sqlite:///{tmp_path}/x.db"),
        environment=ENV,
        tenant="acme",
        allowed_tenants=["globex"],
    )
    with pytest.raises(DagsterResourceFunctionError) as info:
        materialize([anything], resources={"contracts": bad})
    assert isinstance(info.value.__cause__, InvalidArtifactError)
    assert "not one of allowed_tenants" in str(info.value.__cause__)


def test_writing_another_tenants_artifact_through_a_resource_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"

    @asset
    def sneaky(contracts: ContractStoreResource) -> None:
        contracts.put(make_contract("globex", ENV, "stolen", dataset_types=["billing"]))

    with pytest.raises(ScopeViolationError, match="globex/prod, not to scope acme/prod"):
        materialize([sneaky], resources=_bound(DQStoresResource(url=url), tenant="acme"))
    with open_stores(url) as stores:
        assert stores.contracts.get("globex", ENV, "stolen") is None


def test_default_url_lives_under_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert default_stores_url() == f"sqlite:///{tmp_path}/home/dq/dq.db"
    with DQStoresResource().open() as stores:
        stores.contracts.put(make_contract("acme", ENV))
    assert (tmp_path / "home" / "dq" / "dq.db").is_file()
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    assert default_stores_url() == "sqlite:///.dq/dq.db"


def test_stores_are_opened_per_run_and_closed_after_it(tmp_path: Path) -> None:
    holder: dict[str, Any] = {}

    @asset
    def grab(contracts: ContractStoreResource) -> None:
        holder["backend"] = contracts.backend
        assert holder["backend"].get_stores() is not None

    backend = DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    assert materialize([grab], resources=_bound(backend, tenant="acme")).success
    with pytest.raises(StoreError, match="not open"):
        holder["backend"].get_stores()
    with pytest.raises(StoreError, match="not open"):
        backend.get_stores()


@pytest.mark.postgres
def test_result_backend_external_needs_a_results_location(pg_url: str, pg_schema: str) -> None:
    with (
        pytest.raises(InvalidArtifactError, match="needs a results location"),
        DQStoresResource(url=pg_url, schema=pg_schema, result_backend="external").open(),
    ):
        pass


@pytest.mark.postgres
def test_no_secret_reaches_run_config_snapshot_or_event_log(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Postgres here trusts every local connection, so the password is accepted and ignored: the
    # test is about where Dagster records it.
    password = "s3cr3t-Pa55word-XYZ"
    secret_url = pg_url.replace("postgres@", f"postgres:{password}@")
    assert password in secret_url
    monkeypatch.setenv("DQ_TEST_SECRET_URL", secret_url)
    monkeypatch.setenv("DQ_TEST_SECRET_CONN", f"AccountKey={password};EndpointSuffix=core")
    backend = DQStoresResource(url=EnvVar("DQ_TEST_SECRET_URL"), schema=pg_schema)

    @asset
    def checked(contracts: ContractStoreResource, dq_stores: DQStoresResource) -> None:
        contracts.put(make_contract("acme", ENV, dataset_types=["billing"]))
        assert contracts.get_latest_for_dataset("billing") is not None
        assert dq_stores.get_stores() is not None

    # The backend is also a top-level resource, so Dagster records its config in the job snapshot.
    resources = {**_bound(backend, tenant="acme"), "dq_stores": backend}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([checked], resources=resources, instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.job_snapshot_id is not None
        snapshot = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
        events = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
        assert password not in json.dumps(run.run_config, default=str)
        assert password not in snapshot
        assert not [e for e in events if password in e]
        # The search can find what is there: the config is recorded, with the variable's name only.
        assert pg_schema in snapshot and "DQ_TEST_SECRET_URL" in snapshot

    # Reprs redact too, even of a resource given the secret directly.
    direct = DQStoresResource(url=secret_url, results_connection_string=os.environ["DQ_TEST_SECRET_CONN"])
    assert password not in repr(direct) and password not in str(direct)


# -- partition keys, the tenant policy and the scoped views (no Dagster run) ---------------------


def test_partition_tenant_reads_single_multi_and_time_partition_keys() -> None:
    from dagster import DailyPartitionsDefinition, MultiPartitionKey

    assert partition_tenant(None) is None
    assert partition_tenant("acme", StaticPartitionsDefinition(["acme"])) == "acme"
    assert partition_tenant("2024-05-01", DailyPartitionsDefinition(start_date="2024-01-01")) is None
    multi = MultiPartitionsDefinition(
        {"tenant": StaticPartitionsDefinition(["acme"]), "day": StaticPartitionsDefinition(["d1"])}
    )
    assert partition_tenant(MultiPartitionKey({"tenant": "acme", "day": "d1"}), multi) == "acme"
    assert partition_tenant("d1|acme", multi) == "acme"  # the string form, dimensions sorted by name
    no_tenant = MultiPartitionsDefinition(
        {"region": StaticPartitionsDefinition(["eu"]), "day": StaticPartitionsDefinition(["d1"])}
    )
    assert partition_tenant("d1|eu", no_tenant) is None


def test_tenant_policy_rules() -> None:
    single = TenantPolicy("acme", ENV)
    assert single.scope() == Scope("acme", ENV) == single.scope("acme")
    with pytest.raises(TenantNotAllowedError):
        single.scope("globex")
    allow = TenantPolicy(None, ENV, ["acme", "globex"])
    assert allow.scope("globex") == Scope("globex", ENV)
    with pytest.raises(TenantNotAllowedError, match="not in allowed_tenants"):
        allow.scope("initech")
    with pytest.raises(TenantNotAllowedError, match="not bound to a tenant"):
        allow.scope()
    assert TenantPolicy(None, ENV).scope("anyone") == Scope("anyone", ENV)
    with pytest.raises(InvalidArtifactError):
        TenantPolicy(None, ENV).scope("../etc")
    with pytest.raises(InvalidArtifactError, match="allowed_tenants"):
        TenantPolicy(None, ENV, "acme")  # a string is not a list of tenants
    with pytest.raises(InvalidArtifactError, match="not one of allowed_tenants"):
        TenantPolicy("acme", ENV, ["globex"])


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path}/dq.db"
    _seed(url, None)
    with open_stores(url) as stores:
        yield stores


def test_scoped_views_read_only_their_scope_and_refuse_foreign_writes(sqlite_stores: Any) -> None:
    acme = ScopedContractStore(sqlite_stores.contracts, Scope("acme", ENV))
    latest = acme.get_latest_for_dataset("billing")
    assert latest is not None and latest.tenant_id == "acme"
    assert {c.tenant_id for c in acme.iter_all()} == {"acme"}
    with pytest.raises(ScopeViolationError):
        acme.put(make_contract("globex", ENV, "x"))
    with pytest.raises(ScopeViolationError):
        acme.put(make_contract("acme", "dev", "x").model_dump(mode="json"))  # mappings are checked too
    assert acme.put(make_contract("acme", ENV, "x").model_dump(mode="json"))

    runs = ScopedJobRunStore(sqlite_stores.job_runs, Scope("globex", ENV))
    assert [r.job_id for r in runs.iter_all()] == ["globex-run-1"]
    with pytest.raises(ScopeViolationError):
        runs.put(make_run("acme", ENV, "intruder"))
    assert sqlite_stores.job_runs.get("acme", ENV, "intruder") is None
