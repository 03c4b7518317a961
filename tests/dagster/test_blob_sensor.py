"""EXTERNAL_EVENT (Azure Blob) job definitions: one run per new blob, honouring idempotency_scope.

The Azurite tests drop CSV / Parquet files into a real container and evaluate the real sensor
tick after tick: a new blob is requested once, not twice; a re-evaluation from the old cursor asks
for the same run key (which Dagster launches once); the run reads the blob through its tags. The
cursor rules (baseline, same-second blobs, late commits, per-tick bound) are checked on the plain
evaluation with listed blobs given by the test.
"""

# No ``from __future__ import annotations``: Dagster reads op parameter annotations at runtime.
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    OpExecutionContext,
    StaticPartitionsDefinition,
    build_sensor_context,
    job,
    op,
)

from dq_dagster.resources import DQStoresResource
from dq_dagster.schedules import (
    TAG_BLOB_ETAG,
    TAG_BLOB_NAME,
    TAG_BLOB_URI,
    TAG_JOB_DEFINITION_ID,
    TAG_TENANT,
    TAG_TRIGGER,
    BlobItem,
    BlobSource,
    build_blob_event_sensor,
    dq_run_request,
    evaluate_blob_events,
    read_raw_blob,
)
from dq_stores.errors import ConflictError, InvalidArtifactError
from dq_stores.registry import Stores, open_stores
from dq_stores.testing.builders import make_contract, make_job_definition, replace_fields

pytestmark = pytest.mark.dagster

ENV = "prod"
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
CS_ENV = "DQ_TEST_BLOB_CONNECTION_STRING"


def blob_definition(
    tenant: str,
    container: str,
    *,
    job_id: str = "billing-inbound",
    pattern: str = "prod/inbound/*.csv",
    scope: str | None = "per_blob_uri",
    **fields: Any,
) -> Any:
    event_filter: dict[str, Any] = {"container": container, "path_pattern": pattern}
    event_filter.update(fields.pop("extra_filter", {}))
    definition = make_job_definition(tenant, ENV, job_id, contract_id="billing-contract", **fields)
    return replace_fields(
        definition,
        trigger={
            "trigger_type": "EXTERNAL_EVENT",
            "event_source": "azure_blob_event_grid",
            "event_filter": event_filter,
        },
        idempotency_scope=scope,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/dq.db"


@pytest.fixture
def stores(url: str) -> Iterator[Stores]:
    with open_stores(url) as opened:
        for tenant in ("acme", "globex"):
            opened.contracts.put(
                make_contract(tenant, ENV, "billing-contract", "1.0.0", dataset_types=["billing"])
            )
        yield opened


# -- the cursor rules, on listed blobs given by the test ----------------------------------------------


class Listing:
    """Blobs a container holds, as the lister of ``evaluate_blob_events`` reports them."""

    def __init__(self) -> None:
        self.blobs: dict[str, BlobItem] = {}
        self.calls: list[tuple[str, str, str]] = []

    def add(self, name: str, modified: datetime, etag: str | None = None) -> BlobItem:
        item = BlobItem(
            "inbox", name, etag or f"0x{len(self.blobs) + 1:04X}", modified, f"https://acct/inbox/{name}"
        )
        self.blobs[name] = item
        return item

    def __call__(self, tenant: str, container: str, prefix: str) -> list[BlobItem]:
        self.calls.append((tenant, container, prefix))
        return [b for b in self.blobs.values() if b.name.startswith(prefix)]


def test_baseline_then_each_new_blob_once_including_same_second_and_late_commits(stores: Stores) -> None:
    listing = Listing()
    listing.add("prod/inbound/old.csv", T0)
    stores.job_definitions.put(blob_definition("acme", "inbox"))

    first = evaluate_blob_events(stores, ["acme"], ENV, None, listing)
    assert first.runs == []  # what is already there is the baseline
    assert listing.calls == [("acme", "inbox", "prod/inbound/")]  # listed under the literal prefix

    listing.add("prod/inbound/a.csv", T0 + timedelta(seconds=5))
    listing.add("prod/inbound/b.csv", T0 + timedelta(seconds=5))  # same second
    listing.add("prod/other/c.csv", T0 + timedelta(seconds=5))  # does not match
    listing.add("prod/inbound/readme.txt", T0 + timedelta(seconds=5))  # does not match
    second = evaluate_blob_events(stores, ["acme"], ENV, first.cursor, listing)
    assert [r.request.blob_name for r in second.runs] == ["prod/inbound/a.csv", "prod/inbound/b.csv"]
    assert second.runs[0].run_key == "dq-blob:acme:prod:billing-inbound:https://acct/inbox/prod/inbound/a.csv"

    # Committed later but stamped a little earlier than the watermark: still caught, once.
    listing.add("prod/inbound/late.csv", T0 + timedelta(seconds=3))
    third = evaluate_blob_events(stores, ["acme"], ENV, second.cursor, listing)
    assert [r.request.blob_name for r in third.runs] == ["prod/inbound/late.csv"]
    fourth = evaluate_blob_events(stores, ["acme"], ENV, third.cursor, listing)
    assert fourth.runs == []

    # per_blob_uri: rewriting a blob that already ran does not run it again.
    listing.add("prod/inbound/a.csv", T0 + timedelta(seconds=9), etag="0xNEW")
    assert evaluate_blob_events(stores, ["acme"], ENV, fourth.cursor, listing).runs == []


def test_per_blob_version_runs_new_content_and_the_per_tick_bound_holds(stores: Stores) -> None:
    listing = Listing()
    stores.job_definitions.put(blob_definition("acme", "inbox", scope=None))
    first = evaluate_blob_events(stores, ["acme"], ENV, None, listing)
    for i in range(5):
        listing.add(f"prod/inbound/{i}.csv", T0 + timedelta(seconds=i))
    second = evaluate_blob_events(stores, ["acme"], ENV, first.cursor, listing, max_runs_per_definition=3)
    assert [r.request.blob_name for r in second.runs] == [f"prod/inbound/{i}.csv" for i in range(3)]
    third = evaluate_blob_events(stores, ["acme"], ENV, second.cursor, listing, max_runs_per_definition=3)
    assert [r.request.blob_name for r in third.runs] == ["prod/inbound/3.csv", "prod/inbound/4.csv"]
    listing.add("prod/inbound/0.csv", T0 + timedelta(minutes=10), etag="0xV2")
    fourth = evaluate_blob_events(stores, ["acme"], ENV, third.cursor, listing)
    assert [r.run_key for r in fourth.runs] == [
        "dq-blob:acme:prod:billing-inbound:https://acct/inbox/prod/inbound/0.csv@0xV2"
    ]
    state = json.loads(fourth.cursor)["defs"]["acme/prod/billing-inbound"]
    assert len(state["seen"]) == 1  # entries older than the lookback window are pruned


def test_misconfigured_definitions_are_skipped_with_a_message(stores: Stores) -> None:
    listing = Listing()
    stores.job_definitions.put(blob_definition("acme", "inbox", job_id="odd-scope", scope="per_moon_phase"))
    stores.job_definitions.put(blob_definition("acme", "forbidden", job_id="other-container"))
    no_container = blob_definition("acme", "inbox", job_id="no-container")
    stores.job_definitions.put(
        replace_fields(no_container, trigger={"trigger_type": "EXTERNAL_EVENT", "event_source": "azure_blob"})
    )
    kafka = replace_fields(
        blob_definition("acme", "inbox", job_id="kafka"),
        trigger={"trigger_type": "EXTERNAL_EVENT", "event_source": "kafka", "event_filter": {"topic": "x"}},
    )
    stores.job_definitions.put(kafka)
    evaluation = evaluate_blob_events(
        stores, ["acme"], ENV, None, listing, allows=lambda tenant, container: container == "inbox"
    )
    text = "\n".join(evaluation.warnings)
    assert "odd-scope@1.0.0: skipped: idempotency_scope 'per_moon_phase'" in text
    assert "other-container@1.0.0: skipped: tenant acme may not read container 'forbidden'" in text
    assert "no-container@1.0.0: skipped: event_filter.container is missing" in text
    assert "kafka" not in text  # other event sources belong to other sensors
    assert listing.calls == []


# -- Azurite -----------------------------------------------------------------------------------------

tenant_partitions = StaticPartitionsDefinition(["acme", "globex"])
read_frames: list[tuple[str, pl.DataFrame]] = []


@op
def read_inbound(context: OpExecutionContext) -> None:
    request = dq_run_request(context)
    assert request is not None and request.blob_uri is not None
    frame = BlobSource(connection_string_env=CS_ENV).read(request.blob_uri, etag=request.blob_etag)
    read_frames.append((request.blob_uri, frame))


@job(partitions_def=tenant_partitions)
def inbound_job() -> None:
    read_inbound()


def _upload(container: Any, name: str, data: bytes) -> None:
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(container.connection_string, container.name) as client:
        client.upload_blob(name, data, overwrite=True)


CSV = b"invoice_id,gross_amount\nINV-00000001,10.5\nINV-00000002,20.0\n"


@pytest.mark.azurite
def test_a_csv_dropped_into_azurite_is_requested_once_and_read_by_the_run(
    blob_container: Any, stores: Stores, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CS_ENV, blob_container.connection_string)
    _upload(blob_container, "prod/inbound/before.csv", CSV)
    stores.job_definitions.put(blob_definition("acme", blob_container.name))
    source = BlobSource(connection_string_env=CS_ENV, containers=(blob_container.name,))
    sensor = build_blob_event_sensor(inbound_job, tenants={"acme": source}, environment=ENV)
    repository = Definitions(jobs=[inbound_job], sensors=[sensor]).get_repository_def()
    resources = {"dq_stores": DQStoresResource(url=url)}

    def tick(cursor: str | None) -> Any:
        with build_sensor_context(cursor=cursor, resources=resources, repository_def=repository) as context:
            return sensor.evaluate_tick(context)

    baseline = tick(None)
    assert not baseline.run_requests  # before.csv was there first
    _upload(blob_container, "prod/inbound/2024-05-01.csv", CSV)
    _upload(blob_container, "prod/archive/2024-04-30.csv", CSV)  # outside the pattern

    second = tick(baseline.cursor)
    (request,) = second.run_requests
    uri = f"{blob_container.azurite.blob_endpoint}/{blob_container.name}/prod/inbound/2024-05-01.csv"
    assert request.run_key == f"dq-blob:acme:prod:billing-inbound:{uri}"
    assert request.partition_key == "acme"
    assert request.tags[TAG_BLOB_URI] == uri
    assert request.tags[TAG_BLOB_NAME] == "prod/inbound/2024-05-01.csv"
    assert request.tags[TAG_TENANT] == "acme"
    assert request.tags[TAG_JOB_DEFINITION_ID] == "billing-inbound"
    assert request.tags[TAG_TRIGGER] == "EXTERNAL_EVENT"

    third = tick(second.cursor)
    assert not third.run_requests  # not twice
    replay = tick(baseline.cursor)  # the daemon re-evaluating from the old cursor
    assert [r.run_key for r in replay.run_requests] == [request.run_key]  # same key: Dagster dedups

    # The run reads that blob as its raw input, through the tags the sensor set.
    read_frames.clear()
    with DagsterInstance.ephemeral() as instance:
        result = inbound_job.execute_in_process(instance=instance, tags=request.tags, partition_key="acme")
    assert result.success
    ((read_uri, frame),) = read_frames
    assert read_uri == uri
    assert frame.shape == (2, 2) and frame["invoice_id"].to_list() == ["INV-00000001", "INV-00000002"]

    # Overwritten after the sensor saw it: a read pinned to the old etag refuses the new content.
    _upload(blob_container, "prod/inbound/2024-05-01.csv", CSV + b"INV-00000003,1.0\n")
    with pytest.raises(ConflictError):
        read_raw_blob(uri, source, etag=request.tags[TAG_BLOB_ETAG])
    assert read_raw_blob(uri, source).height == 3
    assert not tick(third.cursor).run_requests  # per_blob_uri: the same blob never runs twice


@pytest.mark.azurite
def test_parquet_blobs_per_version_scope_and_tenant_containers(
    blob_container: Any, stores: Stores, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CS_ENV, blob_container.connection_string)
    stores.job_definitions.put(
        blob_definition("globex", blob_container.name, pattern="in/*.parquet", scope="per_blob_version")
    )
    # acme points at globex's container: its source does not allow it.
    stores.job_definitions.put(blob_definition("acme", blob_container.name, pattern="in/*.parquet"))
    sensor = build_blob_event_sensor(
        inbound_job,
        tenants={
            "acme": BlobSource(connection_string_env=CS_ENV, containers=("acme-inbound",)),
            "globex": BlobSource(connection_string_env=CS_ENV, containers=(blob_container.name,)),
        },
        environment=ENV,
    )
    repository = Definitions(jobs=[inbound_job], sensors=[sensor]).get_repository_def()
    resources = {"dq_stores": DQStoresResource(url=url)}

    def tick(cursor: str | None) -> Any:
        with build_sensor_context(cursor=cursor, resources=resources, repository_def=repository) as context:
            return sensor.evaluate_tick(context)

    baseline = tick(None)
    buffer = io.BytesIO()
    pl.DataFrame({"a": [1, 2, 3]}).write_parquet(buffer)
    _upload(blob_container, "in/one.parquet", buffer.getvalue())
    second = tick(baseline.cursor)
    assert [r.tags[TAG_TENANT] for r in second.run_requests] == ["globex"]
    first_key = second.run_requests[0].run_key
    assert first_key.endswith("@" + second.run_requests[0].tags[TAG_BLOB_ETAG])
    frame = read_raw_blob(second.run_requests[0].tags[TAG_BLOB_URI], blob_container.connection_string)
    assert frame["a"].to_list() == [1, 2, 3]

    _upload(blob_container, "in/one.parquet", buffer.getvalue())  # new etag, same name
    third = tick(second.cursor)
    assert len(third.run_requests) == 1 and third.run_requests[0].run_key != first_key

    with pytest.raises(InvalidArtifactError, match="not in the account"):
        read_raw_blob(
            "https://elsewhere.blob.core.windows.net/c/in/one.parquet", blob_container.connection_string
        )
    with pytest.raises(InvalidArtifactError, match="may read"):
        read_raw_blob(
            second.run_requests[0].tags[TAG_BLOB_URI],
            BlobSource(connection_string_env=CS_ENV, containers=("acme-inbound",)),
        )


def test_an_unreachable_account_is_a_tick_warning_not_a_crash(
    stores: Stores, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.plugins.azurite import ACCOUNT, ACCOUNT_KEY, free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv(
        CS_ENV,
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};",
    )
    stores.job_definitions.put(blob_definition("acme", "inbox"))
    sensor = build_blob_event_sensor(
        inbound_job, tenants=["acme"], environment=ENV, source=BlobSource(connection_string_env=CS_ENV)
    )
    with build_sensor_context(resources={"dq_stores": DQStoresResource(url=url)}) as context:
        data = sensor.evaluate_tick(context)
    assert not data.run_requests
    assert "cannot list container 'inbox'" in (data.skip_message or "")
    assert ACCOUNT_KEY not in (data.skip_message or "")
