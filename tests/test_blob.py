"""Azure Blob backend: URL parsing, blob layout, etag concurrency, crash leftovers, error
translation, secrets and request costs. The behaviour shared by every backend is in the
conformance suite (tests/conformance/test_blob.py); this module tests what is Blob-specific.

Pure tests (no service) come first; the rest run against Azurite (``azurite`` marker).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import traceback
from datetime import datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient
from hypothesis import given
from hypothesis import strategies as st

from dq_stores.blob import (
    AzureBlobContractStore,
    AzureBlobJobRunStore,
    BlobLayout,
    descending_id,
    descending_time,
    id_from_descending,
    time_from_descending,
)
from dq_stores.blob_client import connect_container, parse_blob_url, scrub_exception, translate_azure_error
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    StoreError,
    StoreNotFoundError,
)
from dq_stores.registry import open_stores
from dq_stores.scope import Scope
from dq_stores.testing import (
    BASE_TIME,
    make_contract,
    make_job_definition,
    make_run,
    replace_fields,
    unique_id,
)
from tests.plugins.azurite import ACCOUNT_KEY, AzuriteUnavailable, free_port, start_azurite

ID_CHARS = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=12)
SAS = "sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=TopSecretSig%2Babc%3D"


def _chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


# -- pure: URLs, names, encodings -----------------------------------------------------------------


def test_url_forms() -> None:
    plain = parse_blob_url("azure-blob://my-container/a/b?create_container=true")
    assert (plain.container, plain.prefix, plain.account_url) == ("my-container", "a/b", None)
    assert plain.options == {"create_container": "true"}

    cloud = parse_blob_url("azure-blob://acct.blob.core.windows.net/results")
    assert (cloud.account_url, cloud.account_name, cloud.container, cloud.prefix) == (
        "https://acct.blob.core.windows.net",
        "acct",
        "results",
        "",
    )
    emulator = parse_blob_url("azure-blob://127.0.0.1:10000/devstoreaccount1/c01/dq")
    assert emulator.account_url == "http://127.0.0.1:10000/devstoreaccount1"
    assert (emulator.account_name, emulator.container, emulator.prefix) == ("devstoreaccount1", "c01", "dq")


def test_sas_in_url_is_kept_out_of_repr_and_display() -> None:
    location = parse_blob_url(f"azure-blob://acct.blob.core.windows.net/c01/p?{SAS}")
    assert location.sas_token is not None and "TopSecretSig" in location.sas_token
    assert "TopSecretSig" not in repr(location)
    assert "TopSecretSig" not in location.display
    assert location.display == "azure-blob://acct.blob.core.windows.net/c01/p"


@pytest.mark.parametrize(
    ("url", "field_text"),
    [
        ("azure-blob://Bad_Container", "container name"),
        ("azure-blob://c01/p?bogus=1", "unknown"),
        ("azure-blob://user:pw@acct.blob.core.windows.net/c01", "user/password"),
        ("azure-blob://127.0.0.1:10000/devstoreaccount1", "container"),
        ("azure-blob://c01/a/../b", "prefix"),
        ("azure-blob://c01/p?create_container=maybe", "true or false"),
    ],
)
def test_bad_urls_are_refused(url: str, field_text: str) -> None:
    with pytest.raises(InvalidArtifactError, match=field_text):
        parse_blob_url(url)


def test_no_account_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(InvalidArtifactError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_stores("azure-blob://c01/dq")


@pytest.mark.parametrize(
    ("query", "env", "expected"),
    [
        ("?account_key_env=MY_KEY", {"MY_KEY": ACCOUNT_KEY}, "SharedKeyCredentialPolicy"),
        (f"?{SAS}", {}, "AzureSasCredential"),
        ("?sas_token_env=MY_SAS", {"MY_SAS": SAS}, "AzureSasCredential"),
        ("", {"AZURE_STORAGE_KEY": ACCOUNT_KEY}, "SharedKeyCredentialPolicy"),
        ("", {}, "DefaultAzureCredential"),
        ("?credential=default", {"AZURE_STORAGE_KEY": ACCOUNT_KEY}, "DefaultAzureCredential"),
    ],
)
def test_credential_resolution(
    monkeypatch: pytest.MonkeyPatch, query: str, env: dict[str, str], expected: str
) -> None:
    for name in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    connection = connect_container(f"azure-blob://acct.blob.core.windows.net/c01/p{query}")
    try:
        assert type(connection.container.credential).__name__ == expected
        assert connection.base_url == "https://acct.blob.core.windows.net/c01"
        assert "TopSecretSig" not in repr(connection) + connection.display
    finally:
        connection.close()


def test_malformed_connection_string_does_not_leak_the_key() -> None:
    secret = "SuperSecretKey0123456789=="
    with pytest.raises(InvalidArtifactError) as info:
        open_stores("azure-blob://c01", connection_string=f"AccountName=a;AccountKey={secret};garbage")
    assert secret not in _chain_text(info.value)


def test_scrub_exception_redacts_the_whole_chain() -> None:
    inner = OSError(f"GET /c/x?{SAS} failed")
    outer = ServiceRequestError(f"connection to http://h/c/x?{SAS} refused", error=inner)
    try:
        raise outer from inner
    except ServiceRequestError as exc:
        error = translate_azure_error(exc, "read x")
        scrub_exception(exc)
        try:
            raise error from exc
        except BackendUnavailableError as final:
            text = _chain_text(final)
    assert "TopSecretSig" not in text
    assert "sig=***" in text


def test_layout() -> None:
    layout = BlobLayout("dq/")
    scope = Scope("acme", "prod")
    assert (
        layout.current(scope, "contracts", "billing", "1.2.0")
        == "dq/acme/prod/contracts/current/billing/1.2.0.json"
    )
    assert (
        layout.revision(scope, "contracts", "billing", "1.2.0", "g1", 3)
        == "dq/acme/prod/contracts/history/billing/1.2.0/g1/rev-00000003.json"
    )
    assert layout.run(scope, "run-7") == "dq/acme/prod/job_runs/run-7.json"
    assert layout.run_index(scope, BASE_TIME, "run-7").startswith("dq/acme/prod/job_runs/.by-time/")
    # Azure advises against segments that end with a dot: such ids are written with %2E.
    dotted = Scope("acme.", "prod")
    assert layout.current(dotted, "contracts", "x.", "1.") == "dq/acme%2E/prod/contracts/current/x%2E/1..json"
    assert layout.parse_current("dq/acme%2E/prod/contracts/current/x%2E/1..json") == ("x.", "1.")


@given(ids, ids)
def test_descending_id_reverses_byte_order(a: str, b: str) -> None:
    assert (a < b) == (descending_id(a) > descending_id(b))
    assert id_from_descending(descending_id(a)) == a


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)))
def test_descending_time_reverses_order(value: datetime) -> None:
    later = value + timedelta(microseconds=1)
    assert descending_time(value) > descending_time(later)
    assert time_from_descending(descending_time(value)).replace(tzinfo=None) == value


def test_known_heads_are_bounded_copies_by_name_and_etag() -> None:
    from dq_stores.blob.backend import KnownHeads

    known = KnownHeads(size=2)
    meta = {"dqhash": "h1"}
    known.add("a", '"1"', meta)
    meta["dqhash"] = "changed by the caller"
    head = known.get("a", '"1"')
    assert head is not None and head.metadata == {"dqhash": "h1"}  # a copy was kept
    head.metadata["dqhash"] = "changed by the reader"
    assert known.get("a", '"1"').metadata == {"dqhash": "h1"}  # type: ignore[union-attr]
    assert known.get("a", '"2"') is None and known.get("b", '"1"') is None  # the etag is part of the key
    known.add("b", '"1"', {})
    known.get("a", '"1"')  # "a" is now the most recently used
    known.add("c", '"1"', {})
    assert known.get("b", '"1"') is None  # the least recently used went
    assert known.get("a", '"1"') is not None and known.get("c", '"1"') is not None


def test_importing_dq_stores_does_not_import_azure() -> None:
    code = (
        "import sys, dq_stores, dq_stores.registry, dq_stores.base, dq_stores.payloads;"
        "import dq_stores.sql.backend;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'azure');"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- with Azurite ---------------------------------------------------------------------------------


class CountRequests:
    """Counts the HTTP requests a client really sends: the storage SDK calls its
    ``raw_request_hook`` once per attempt, after the retry policy, so retries would show."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def __call__(self, request) -> None:  # type: ignore[no-untyped-def]
        self.methods.append(request.http_request.method)

    def take(self) -> list[str]:
        out, self.methods = self.methods, []
        return out


@pytest.fixture
def counter() -> CountRequests:
    return CountRequests()


@pytest.fixture
def blob_stores(blob_container, counter):
    with open_stores(
        blob_container.url("dq"),
        connection_string=blob_container.connection_string,
        client_kwargs={"raw_request_hook": counter},
    ) as stores:
        counter.take()
        yield stores


@pytest.mark.azurite
def test_blob_layout_of_every_kind(blob_stores, blob_container) -> None:
    tenant = unique_id()
    contract = make_contract(tenant, "dev", "billing", "1.0.0")
    blob_stores.contracts.put(contract)
    blob_stores.contracts.put(replace_fields(contract, name="renamed"))
    blob_stores.job_runs.put(make_run(tenant, "dev", "r1", submitted_at=BASE_TIME))
    names = blob_container.blob_names(f"dq/{tenant}/")
    generation = names[1].split("/")[-2]
    assert names == [
        f"dq/{tenant}/dev/contracts/current/billing/1.0.0.json",
        f"dq/{tenant}/dev/contracts/history/billing/1.0.0/{generation}/rev-00000001.json",
        f"dq/{tenant}/dev/job_runs/.by-time/{descending_time(BASE_TIME)}-{descending_id('r1')}",
        f"dq/{tenant}/dev/job_runs/r1.json",
    ]
    # Deleting removes the history too.
    assert blob_stores.contracts.delete(tenant, "dev", "billing")
    assert blob_stores.job_runs.delete(tenant, "dev", "r1")
    assert blob_container.blob_names(f"dq/{tenant}/") == []


@pytest.mark.azurite
def test_etags_are_blob_etags_and_hold_across_clients(blob_stores, blob_container) -> None:
    tenant = unique_id()
    contract = make_contract(tenant, "dev", "c", "1.0.0")
    etag = blob_stores.contracts.put(contract)
    client = BlobServiceClient.from_connection_string(blob_container.connection_string)
    props = client.get_blob_client(blob_container.name, f"dq/{tenant}/dev/contracts/current/c/1.0.0.json")
    assert props.get_blob_properties().etag == etag

    # A second, independent client (another process would be the same) sees the same etags.
    with AzureBlobContractStore.from_url(
        blob_container.url("dq"), connection_string=blob_container.connection_string
    ) as other:
        entry = other.get_entry(tenant, "dev", "c")
        assert entry is not None and entry.etag == etag
        newer = other.put(replace_fields(contract, name="by other"), if_match=etag)
    with pytest.raises(ConflictError):
        blob_stores.contracts.put(replace_fields(contract, name="stale"), if_match=etag)
    assert blob_stores.contracts.put(replace_fields(contract, name="fresh"), if_match=newer) != newer
    with pytest.raises(ConflictError):
        blob_stores.contracts.put(contract, create_only=True)
    run = make_run(tenant, "dev", "r", status="running", started_at=BASE_TIME)
    run_etag = blob_stores.job_runs.put(run)
    with pytest.raises(ConflictError):
        blob_stores.job_runs.put(run, create_only=True)
    with pytest.raises(ConflictError):
        blob_stores.job_runs.put(replace_fields(run, status="failed"), if_match='"0x0"')
    assert blob_stores.job_runs.put(replace_fields(run, status="failed"), if_match=run_etag) != run_etag


@pytest.mark.azurite
def test_request_costs(blob_stores, counter) -> None:
    """The costs the module docstring promises (the README copies them)."""
    tenant = unique_id()
    contracts, runs = blob_stores.contracts, blob_stores.job_runs
    DAY = timedelta(days=1)
    contract = make_contract(tenant, "dev", "c", "1.0.0", dataset_types=["orders"])
    contracts.put(contract)
    assert counter.take() == ["GET", "PUT"]
    contracts.put(contract)
    assert counter.take() == ["GET"]  # identical: no write
    contracts.put(replace_fields(contract, name="v2"))
    assert counter.take() == ["GET", "PUT", "PUT"]  # history copy + conditional current
    contracts.put(make_contract(tenant, "dev", "d", "1.0.0"), create_only=True)
    assert counter.take() == ["PUT"]
    contracts.get(tenant, "dev", "c", "1.0.0")
    assert counter.take() == ["GET"]
    contracts.get(tenant, "dev", "c")
    assert counter.take() == ["GET", "GET"]  # list that id's versions, download the latest
    assert contracts.get_latest_for_dataset(tenant, "dev", "orders") is not None
    assert counter.take() == ["GET", "GET"]  # one listing, one download
    assert len(contracts.list(tenant, "dev", limit=1).items) == 1
    assert counter.take() == ["GET", "GET"]
    assert len(contracts.history(tenant, "dev", "c", "1.0.0")) == 2
    assert counter.take() == ["HEAD", "GET"]

    run = make_run(tenant, "dev", "r1", status="running", submitted_at=BASE_TIME)
    runs.put(run)
    assert counter.take() == ["HEAD", "PUT", "PUT", "PUT"]  # index pending, run, index final
    runs.put(run)
    assert counter.take() == ["HEAD"]
    runs.get(tenant, "dev", "r1")
    assert counter.take() == ["GET"]
    runs.put(replace_fields(run, metadata={"count": 1}))
    assert counter.take() == ["HEAD", "PUT"]  # no indexed field changed: the run only
    entry = runs.get_entry(tenant, "dev", "r1")
    assert entry is not None
    etag = runs.put(replace_fields(run, metadata={"count": 2}), if_match=entry.etag)
    assert counter.take() == ["GET", "PUT"]  # read-modify-write: the read told the put what it needs
    etag = runs.put(replace_fields(run, metadata={"count": 3}), if_match=etag)
    assert counter.take() == ["PUT"]  # this store wrote that revision itself
    runs.put(replace_fields(run, status="succeeded", metadata={"count": 3}), if_match=etag)
    assert counter.take() == ["PUT", "PUT", "PUT"]  # an indexed field changed: pending, run, final
    runs.put(replace_fields(run, status="succeeded", metadata={"count": 3}, submitted_at=BASE_TIME))
    assert counter.take() == ["HEAD"]  # identical
    runs.put(replace_fields(run, status="succeeded", metadata={"count": 3}, submitted_at=BASE_TIME - DAY))
    # The run time moved: HEAD of the old entry, new entry pending, run, new entry final, old deleted.
    assert counter.take() == ["HEAD", "HEAD", "PUT", "PUT", "PUT", "DELETE"]
    runs.put_result(tenant, "dev", "r1", {"rows": 1}, offload=True)  # the first records the identity
    counter.take()
    runs.put_result(tenant, "dev", "r1", {"rows": 2}, offload=True)
    # Run exists, payload, read-modify-write of the record, the replaced payload deleted.
    assert counter.take() == ["GET", "PUT", "GET", "PUT", "DELETE"]
    for n in range(2, 6):
        runs.put(make_run(tenant, "dev", f"r{n}", submitted_at=BASE_TIME + timedelta(minutes=n)))
    counter.take()
    page = runs.list(tenant, "dev", limit=2)
    assert [r.job_id for r in page] == ["r5", "r4"]
    # One listing; the two runs and a look-ahead downloaded in parallel.
    assert counter.take() == ["GET", "GET", "GET", "GET"]
    runs.delete(tenant, "dev", "r1")
    assert counter.take() == ["HEAD", "HEAD", "DELETE", "DELETE"]


@pytest.mark.azurite
def test_known_revisions_never_change_an_answer(blob_container, counter) -> None:
    """A put with ``if_match`` decides from the metadata of the revision it read instead of a
    HEAD; whatever another store (another process) wrote meanwhile, the answers are those of a
    fresh read: a stale etag is ``ConflictError`` (also for identical content and for a
    transition that the stale revision would refuse), a fresh one is honoured."""

    def open_one():  # type: ignore[no-untyped-def]
        return open_stores(
            blob_container.url("dq"),
            connection_string=blob_container.connection_string,
            client_kwargs={"raw_request_hook": counter},
        )

    tenant = unique_id()
    with open_one() as mine, open_one() as theirs:
        runs, other = mine.job_runs, theirs.job_runs
        run = make_run(tenant, "dev", "r", status="running", submitted_at=BASE_TIME, metadata={"n": 0})
        runs.put(run)
        seen = runs.get_entry(tenant, "dev", "r")
        assert seen is not None
        newer = other.put(replace_fields(run, metadata={"n": 1}))
        counter.take()
        with pytest.raises(ConflictError):
            runs.put(replace_fields(run, metadata={"n": 2}), if_match=seen.etag)  # changed content
        assert counter.take() == ["PUT"]  # refused by the service: If-Match failed
        with pytest.raises(ConflictError):
            runs.put(run, if_match=seen.etag)  # identical to the revision read, not to the current one
        with pytest.raises(ConflictError):
            runs.put(replace_fields(run, status="pending"), if_match=seen.etag)  # stale, not refused
        other.put(replace_fields(run, status="succeeded", metadata={"n": 1}), if_match=newer)
        final = runs.get_entry(tenant, "dev", "r")
        assert final is not None
        with pytest.raises(InvalidArtifactError, match="may not change from succeeded to running"):
            runs.put(replace_fields(run, metadata={"n": 9}), if_match=final.etag)
        assert runs.put(final.artifact, if_match=final.etag) == final.etag  # identical: a no-op
        stored = other.get(tenant, "dev", "r")
        assert stored is not None and stored.status == "succeeded" and stored.metadata == {"n": 1}


@pytest.mark.azurite
def test_same_index_puts_keep_filtered_lists_exact_and_cheap(blob_stores, blob_container) -> None:
    """Puts that change no indexed field leave the index entry as it was; readers trust it (no
    second decode of the run) and filtered lists stay exact. A run written before the digest
    existed (no ``dqix``) takes the full protocol once."""
    tenant = unique_id()
    runs = blob_stores.job_runs
    backend = runs.backend
    run = make_run(tenant, "dev", "r", status="running", submitted_at=BASE_TIME, partition_key="p0")
    runs.put(run)
    for n in range(3):
        runs.put(replace_fields(run, metadata={"n": n}))
    decoded = []
    real_decode = runs._decode

    def counting_decode(document):  # type: ignore[no-untyped-def]
        decoded.append(document)
        return real_decode(document)

    runs._decode = counting_decode  # type: ignore[method-assign]
    try:
        assert [r.metadata for r in runs.list(tenant, "dev", partition_key="p0")] == [{"n": 2}]
        assert len(decoded) == 1  # the page itself: the entry was trusted, not re-checked
        assert runs.list(tenant, "dev", partition_key="p1").items == []
        assert runs.list(tenant, "dev", status="failed").items == []
    finally:
        del runs._decode

    # A run as an older version wrote it: no digest of its indexed fields.
    name = backend.layout.run(Scope(tenant, "dev"), "r")
    head = backend.head(name)
    assert head is not None and "dqix" in head.metadata
    backend.set_metadata(name, {k: v for k, v in head.metadata.items() if k != "dqix"}, etag=head.etag)
    entry_name = backend.layout.run_index(Scope(tenant, "dev"), BASE_TIME, "r")
    before = backend.head(entry_name)
    runs.put(replace_fields(run, metadata={"n": 10}))
    after = backend.head(entry_name)
    assert before is not None and after is not None and after.etag != before.etag  # full protocol
    assert "dqindex" in after.metadata
    runs.put(replace_fields(run, metadata={"n": 11}))
    again = backend.head(entry_name)
    assert again is not None and again.etag == after.etag  # and then the run only
    assert [r.metadata for r in runs.list(tenant, "dev", partition_key="p0")] == [{"n": 11}]


@pytest.mark.azurite
@pytest.mark.reliability
def test_racing_writers_changing_indexed_fields_or_not_keep_filters_exact(blob_container) -> None:
    """Writers in two stores (two caches of known revisions) race on three runs with
    read-modify-write, some puts changing an indexed field (the dataset type), most not: no
    update is lost, and every filter then lists each run exactly by its final fields."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    tenant = unique_id()
    job_ids = ["a", "b", "c"]
    opened = [
        open_stores(blob_container.url("dq"), connection_string=blob_container.connection_string)
        for _ in range(2)
    ]
    try:
        for job_id in job_ids:
            opened[0].job_runs.put(
                make_run(
                    tenant,
                    "dev",
                    job_id,
                    status="running",
                    submitted_at=BASE_TIME,
                    dataset_type="d0",
                    metadata={"n": 0},
                )
            )

        def writer(seed: int) -> int:
            rng = random.Random(seed)
            runs = opened[seed % 2].job_runs
            done = 0
            for _ in range(12):
                job_id = rng.choice(job_ids)
                while True:
                    entry = runs.get_entry(tenant, "dev", job_id)
                    assert entry is not None
                    update: dict[str, object] = {"metadata": {"n": entry.artifact.metadata["n"] + 1}}
                    if rng.random() < 0.3:
                        update["dataset_type"] = rng.choice(["d0", "d1", "d2"])
                    try:
                        runs.put(entry.artifact.model_copy(update=update), if_match=entry.etag)
                    except ConflictError:
                        time.sleep(rng.uniform(0, 0.02))
                        continue
                    done += 1
                    break
            return done

        with ThreadPoolExecutor(6) as pool:
            total = sum(pool.map(writer, range(6)))
        runs = opened[1].job_runs
        finals = {job_id: runs.get(tenant, "dev", job_id) for job_id in job_ids}
        assert sum(r.metadata["n"] for r in finals.values() if r is not None) == total == 72
        for key in ("d0", "d1", "d2"):
            expected = sorted(j for j, r in finals.items() if r is not None and r.dataset_type == key)
            for store in opened:
                listed = sorted(r.job_id for r in store.job_runs.list(tenant, "dev", dataset_type=key))
                assert listed == expected, key
        assert sorted(r.job_id for r in runs.list(tenant, "dev", status="running")) == job_ids
    finally:
        for stores in opened:
            stores.close()


@pytest.mark.azurite
def test_run_time_change_moves_its_index_entry(blob_stores, blob_container) -> None:
    tenant = unique_id()
    runs = blob_stores.job_runs
    runs.put(make_run(tenant, "dev", "r1", status="pending"))  # no times: indexed at record time
    [first] = blob_container.blob_names(f"dq/{tenant}/dev/job_runs/.by-time/")
    runs.put(make_run(tenant, "dev", "r1", status="running", started_at=BASE_TIME))
    assert blob_container.blob_names(f"dq/{tenant}/dev/job_runs/.by-time/") == [
        f"dq/{tenant}/dev/job_runs/.by-time/{descending_time(BASE_TIME)}-{descending_id('r1')}"
    ]
    assert first.endswith(descending_id("r1")) and descending_time(BASE_TIME) not in first
    assert [r.status.value for r in runs.list(tenant, "dev", since=BASE_TIME)] == ["running"]


@pytest.mark.azurite
def test_index_entries_left_by_crashes_never_change_answers(blob_stores, blob_container) -> None:
    """A crash between the index write and the run write leaves a pending or stale entry; readers
    check the run itself, so lists stay exact."""
    tenant = unique_id()
    runs = blob_stores.job_runs
    backend = runs.backend
    scope = Scope(tenant, "dev")
    runs.put(make_run(tenant, "dev", "a", status="running", submitted_at=BASE_TIME))
    runs.put(make_run(tenant, "dev", "b", status="failed", submitted_at=BASE_TIME + timedelta(minutes=1)))
    layout = backend.layout
    # 1. An entry at a time where run "a" is not (a writer died before moving it there).
    backend.put(layout.run_index(scope, BASE_TIME + timedelta(hours=1), "a"), b"", {"dqpending": "1"})
    # 2. Run "b"'s entry marked pending again (a writer died before writing "b").
    b_entry = layout.run_index(scope, BASE_TIME + timedelta(minutes=1), "b")
    backend.put(b_entry, b"", {"dqpending": "1"})
    # 3. An entry for a run that does not exist at all.
    backend.put(layout.run_index(scope, BASE_TIME, "ghost"), b"", {"dqpending": "1"})

    assert [r.job_id for r in runs.list_by_tenant(tenant)] == ["b", "a"]
    assert [r.job_id for r in runs.list(tenant, "dev", status="failed")] == ["b"]
    assert [r.job_id for r in runs.list(tenant, "dev", status="running")] == ["a"]
    page = runs.list(tenant, "dev", limit=1)
    assert [r.job_id for r in page] == ["b"] and page.next_cursor is not None
    page = runs.list(tenant, "dev", limit=1, cursor=page.next_cursor)
    assert [r.job_id for r in page] == ["a"] and page.next_cursor is None

    # A re-put of "b" that changes no indexed field writes the run only: the entry stays pending.
    runs.put(
        make_run(
            tenant, "dev", "b", status="failed", submitted_at=BASE_TIME + timedelta(minutes=1), message="x"
        )
    )
    b_pending = backend.head(b_entry)
    assert b_pending is not None and b_pending.metadata == {"dqpending": "1"}
    assert [r.job_id for r in runs.list(tenant, "dev", status="failed")] == ["b"]
    assert [r.message for r in runs.list(tenant, "dev", status="failed")] == ["x"]

    # 4. An entry whose metadata is outdated: it claims "a" failed (metadata copied from "b").
    runs.put(
        make_run(
            tenant,
            "dev",
            "b",
            status="failed",
            submitted_at=BASE_TIME + timedelta(minutes=1),
            message="x",
            partition_key="p1",
        )
    )
    b_final = backend.head(b_entry)
    assert b_final is not None and "dqindex" in b_final.metadata  # an indexed field changed: finished
    backend.put(layout.run_index(scope, BASE_TIME, "a"), b"", b_final.metadata)
    assert [r.job_id for r in runs.list(tenant, "dev", status="failed")] == ["b"]
    assert [r.job_id for r in runs.list_by_tenant(tenant)] == ["b", "a"]


@pytest.mark.azurite
def test_missing_container(azurite) -> None:
    name = f"dqmissing-{unique_id('')}"
    with open_stores(f"azure-blob://{name}/dq", connection_string=azurite.connection_string) as stores:
        # Not "retryable": no retry creates a container.
        with pytest.raises(StoreNotFoundError, match="create_container"):
            stores.contracts.get("t", "dev", "c")
        with pytest.raises(StoreNotFoundError, match="create_container"):
            list(stores.job_runs.list_by_tenant("t"))
    with open_stores(
        f"azure-blob://{name}/dq", connection_string=azurite.connection_string, create_container=True
    ) as stores:
        assert stores.contracts.get("t", "dev", "c") is None
    BlobServiceClient.from_connection_string(azurite.connection_string).delete_container(name)


@pytest.mark.azurite
def test_wrong_key_is_unavailable_without_the_key(azurite, blob_container) -> None:
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    url = azurite.url(blob_container.name, "dq") + "?retry_total=0"
    with open_stores(url, credential=wrong) as stores:
        with pytest.raises(BackendUnavailableError, match="access denied") as info:
            stores.contracts.get("t", "dev", "c", "1")
        assert wrong not in _chain_text(info.value)
        assert wrong not in repr(stores) + repr(stores.contracts) + repr(stores.job_runs)
    # The right key through the emulator URL form works.
    with open_stores(url, credential=ACCOUNT_KEY) as stores:
        assert stores.contracts.get("t", "dev", "c", "1") is None
        assert ACCOUNT_KEY not in repr(stores) + repr(stores.contracts) + stores.url


@pytest.mark.azurite
def test_secrets_never_in_reprs(blob_stores, blob_container) -> None:
    for obj in (blob_stores, blob_stores.contracts, blob_stores.job_runs, blob_stores.job_runs.backend):
        assert ACCOUNT_KEY not in repr(obj)
        assert blob_container.name in repr(obj) or obj is blob_stores


def test_closed_port_is_backend_unavailable_and_keeps_the_sas_secret() -> None:
    port = free_port()  # nothing listens there
    url = f"azure-blob://127.0.0.1:{port}/devstoreaccount1/c01/dq?{SAS}&retry_total=0"
    with open_stores(url) as stores:
        assert "TopSecretSig" not in stores.url + repr(stores) + repr(stores.job_runs)
        for call in (
            lambda: stores.contracts.get("t", "dev", "c"),
            lambda: stores.contracts.put(make_contract("t", "dev", "c")),
            lambda: stores.job_runs.list("t", "dev"),
            lambda: list(stores.job_runs.list_by_tenant("t")),
        ):
            with pytest.raises(BackendUnavailableError, match="unreachable") as info:
                call()
            assert "TopSecretSig" not in _chain_text(info.value)


@pytest.mark.azurite
def test_azurite_stopped_mid_use_is_backend_unavailable(tmp_path) -> None:
    try:
        own = start_azurite(tmp_path)
    except AzuriteUnavailable as exc:
        from tests.plugins.postgres import require_service

        require_service("Azurite", str(exc))
        raise
    try:
        with open_stores(
            own.url("c01", "dq") + "?create_container=true&retry_total=0", credential=own.account_key
        ) as stores:
            tenant = unique_id()
            stores.job_runs.put(make_run(tenant, "dev", "r1", submitted_at=BASE_TIME))
            assert stores.job_runs.get(tenant, "dev", "r1") is not None
            own.stop()
            with pytest.raises(BackendUnavailableError):
                stores.job_runs.get(tenant, "dev", "r1")
            with pytest.raises(BackendUnavailableError):
                stores.job_runs.put(make_run(tenant, "dev", "r2"))
            with pytest.raises(StoreError):
                stores.contracts.list(tenant, "dev")
    finally:
        own.stop()


@pytest.mark.azurite
def test_results_go_to_blob_next_to_the_run(blob_stores, blob_container) -> None:
    tenant = unique_id()
    runs = blob_stores.job_runs
    runs.put(make_run(tenant, "dev", "r1", submitted_at=BASE_TIME))
    report = {"rows": list(range(100))}
    ref = runs.put_result(tenant, "dev", "r1", report)
    assert ref.location == "external" and ref.uri is not None
    # In the store's own namespace of its results folder: <prefix>/.results/<store id>/...
    store_id = runs.store_id()
    assert store_id is not None
    assert ref.uri.startswith(
        blob_container.azurite.blob_endpoint
        + f"/{blob_container.name}/dq/.results/{store_id}/{tenant}/dev/job_runs/r1/result-"
    )
    assert runs.get_result_model(tenant, "dev", "r1") == report
    # Streamed in several blocks, committed at once.
    chunks = [b"x" * 1000, b"y" * 1000, b"z" * 10]
    ref2 = runs.put_result(tenant, "dev", "r1", iter(chunks), content_type="text/csv")
    assert ref2.size_bytes == 2010 and runs.get_result(tenant, "dev", "r1") == b"".join(chunks)
    # Payload listings never show run records or index entries.
    listed = [p.key for p in runs.payloads.list(f"{store_id}/{tenant}/")]
    assert listed == [ref2.uri.split("/dq/.results/", 1)[1]]
    assert runs.delete_with_result(tenant, "dev", "r1")
    assert blob_container.blob_names(f"dq/{tenant}/") == []


@pytest.mark.azurite
def test_large_bytes_are_hashed_during_their_upload(blob_stores, blob_container) -> None:
    # From 1 MiB the sha256 is computed in another thread while the Put Blob goes out; payload
    # names are random, so the same bytes put again get a new blob and the replaced one goes.
    tenant = unique_id()
    runs = blob_stores.job_runs
    runs.put(make_run(tenant, "dev", "r1", submitted_at=BASE_TIME))
    body = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)
    first = runs.put_result(tenant, "dev", "r1", body, offload=True)
    assert (first.sha256, first.size_bytes) == (hashlib.sha256(body).hexdigest(), len(body))
    second = runs.put_result(tenant, "dev", "r1", body, offload=True)
    assert second.sha256 == first.sha256 and second.uri != first.uri
    assert runs.get_result(tenant, "dev", "r1") == body
    store_id = runs.store_id()
    listed = [p.key for p in runs.payloads.list(f"{store_id}/{tenant}/")]
    assert listed == [second.uri.split("/dq/.results/", 1)[1]]


@pytest.mark.azurite
def test_parallel_downloads_can_be_turned_off(blob_container) -> None:
    with open_stores(
        blob_container.url(), connection_string=blob_container.connection_string, max_workers=1
    ) as stores:
        tenant = unique_id()
        for n in range(3):
            stores.contracts.put(make_contract(tenant, "dev", f"c{n}"))
        assert [c.contract_id for c in stores.contracts.list(tenant, "dev")] == ["c0", "c1", "c2"]
        assert isinstance(stores.job_runs, AzureBlobJobRunStore)


@pytest.mark.azurite
def test_connection_string_env_option(monkeypatch: pytest.MonkeyPatch, azurite) -> None:
    monkeypatch.setenv("MY_DQ_BLOB", azurite.connection_string)
    name = f"dqenv-{unique_id('')}"
    with open_stores(
        f"azure-blob://{name}/dq?connection_string_env=MY_DQ_BLOB&create_container=true"
    ) as stores:
        assert stores.contracts.get("t", "dev", "c") is None
    BlobServiceClient.from_connection_string(azurite.connection_string).delete_container(name)


@pytest.mark.azurite
def test_index_too_big_for_metadata_is_filtered_by_download(blob_stores, blob_container, counter) -> None:
    tenant = unique_id()
    tags = [f"tag-{n:03d}-" + "x" * 80 for n in range(80)]  # ~8 KB of index: over Azure's limit
    jobs = blob_stores.job_definitions
    jobs.put(make_job_definition(tenant, "dev", "big", tags=tags))
    jobs.put(make_job_definition(tenant, "dev", "small", tags=["x"]))
    head = jobs.backend.head(f"dq/{tenant}/dev/job_definitions/current/big/1.0.0.json")
    assert head is not None and "dqindex" not in head.metadata
    counter.take()
    assert [j.job_definition_id for j in jobs.list_by_tags(tenant, "dev", tags[:2])] == ["big"]
    assert counter.take() == ["GET", "GET", "GET"]  # listing, the big one to filter it, its page
    assert [j.job_definition_id for j in jobs.list_by_tags(tenant, "dev", ["x"])] == ["small"]

    runs = blob_stores.job_runs
    long_key = "asset/" + "k" * 1000  # with the two fields below: ~8 KB of index
    runs.put(
        make_run(
            tenant,
            "dev",
            "r-long",
            submitted_at=BASE_TIME,
            asset_key=long_key,
            dagster_run_id="d" * 3000,
            partition_key="p" * 2000,
        )
    )
    entry = runs.backend.layout.run_index(Scope(tenant, "dev"), BASE_TIME, "r-long")
    head = runs.backend.head(entry)
    assert head is not None and "dqindex" not in head.metadata
    runs.put(make_run(tenant, "dev", "r-short", submitted_at=BASE_TIME, asset_key="short"))
    assert [r.job_id for r in runs.list(tenant, "dev", asset_key=long_key)] == ["r-long"]
    assert [r.job_id for r in runs.list(tenant, "dev", asset_key="short")] == ["r-short"]


@pytest.mark.azurite
@pytest.mark.reliability
def test_concurrent_upserts_moving_a_run_leave_it_listed_once(blob_stores) -> None:
    """Writers race on one run, each moving it to another time: whatever interleaving, the run
    is listed exactly once, at the time of its final state, by every filter."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    tenant = unique_id()
    runs = blob_stores.job_runs
    times = [BASE_TIME + timedelta(minutes=m) for m in range(3)]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(8):
            run = make_run(
                tenant, "dev", "hot", status="running", submitted_at=rng.choice(times), message=f"{seed}-{n}"
            )
            runs.put(run)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(writer, range(6)))
    final = runs.get(tenant, "dev", "hot")
    assert final is not None
    assert [r.message for r in runs.list_by_tenant(tenant)] == [final.message]
    assert [r.message for r in runs.list(tenant, "dev", status="running")] == [final.message]
    assert [r.job_id for r in runs.list(tenant, "dev", since=final.submitted_at, limit=1)] == ["hot"]
    assert runs.list(tenant, "dev", status="failed").items == []


@pytest.mark.azurite
def test_run_pages_are_right_without_server_side_start_from(blob_stores) -> None:
    """Where the service refuses ``startFrom`` the backend lists from the prefix and skips ahead
    itself: the pages must not change."""
    tenant = unique_id()
    runs = blob_stores.job_runs
    for n in range(5):
        runs.put(make_run(tenant, "dev", f"r{n}", submitted_at=BASE_TIME + timedelta(minutes=n)))
    for server_side in (True, False):
        runs.backend._start_from = server_side
        seen, cursor = [], None
        while True:
            page = runs.list(tenant, "dev", limit=2, cursor=cursor, until=BASE_TIME + timedelta(minutes=4))
            seen += [r.job_id for r in page]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ["r3", "r2", "r1", "r0"]
