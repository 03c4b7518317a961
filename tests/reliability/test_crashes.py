"""Crashes: a child process writing contracts, job runs and large results (through ``put_result``
with offload, streamed and as bytes) is killed with SIGKILL at random moments. After every kill
each artifact is exactly one of the versions written (never partial), no run record points at a
missing or corrupt payload, and ``gc_payloads`` removes every orphaned payload and nothing that
is referenced. 20 kills on SQLite, 20 on the filesystem, 10 on Blob: 50 in total.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dq_stores.canonical import canonical_json
from dq_stores.registry import Stores
from dq_stores.testing.builders import unique_id
from tests.reliability.conftest import (
    CRASH_CONTRACTS,
    CRASH_RUNS,
    ENV,
    Location,
    WriteLog,
    crash_contract,
    crash_payload,
    crash_writer,
    make_location,
    mp_context,
    parse_payload_header,
)

pytestmark = pytest.mark.reliability

KILLS = {"sqlite": 20, "filesystem": 20, "blob": 10}


def check_artifacts(stores: Stores, tenant: str, log: WriteLog, *, full_history: bool) -> int:
    """Every contract is exactly the last acknowledged write or the one in flight (never partial,
    never older); with ``full_history`` every revision is checked and the history holds every
    acknowledged write in order. Returns the number of revisions checked."""
    checked = 0
    for contract_id in CRASH_CONTRACTS:
        family = f"contract:{contract_id}"
        allowed = log.candidates(family, lambda op: True, lambda op, gen: gen)
        entry = stores.contracts.get_entry(tenant, ENV, contract_id, "1.0.0")
        if entry is None:
            assert None in allowed, f"{contract_id}: an acknowledged contract is missing"
            continue
        gen = entry.artifact.metadata["gen"]
        assert gen in allowed, (
            f"{contract_id}: generation {gen} is neither the acknowledged one nor in flight"
        )
        expected = canonical_json(crash_contract(tenant, contract_id, gen))
        assert canonical_json(entry.artifact) == expected, f"{contract_id}: content is not generation {gen}"
        history = stores.contracts.history(tenant, ENV, contract_id, "1.0.0")
        assert history and history[-1].etag == entry.etag, f"{contract_id}: current is not the last revision"
        if not full_history:
            continue
        gens = []
        for n in range(1, len(history) + 1):
            old = stores.contracts.get_revision(tenant, ENV, contract_id, "1.0.0", n)
            assert old is not None, f"{contract_id}: revision {n} is missing"
            gens.append(old.metadata["gen"])
            assert canonical_json(old) == canonical_json(crash_contract(tenant, contract_id, gens[-1]))
            checked += 1
        assert log.history_allowed(family, gens), f"{contract_id}: history lost an acknowledged revision"
    return checked


def check_results(stores: Stores, tenant: str, log: WriteLog) -> set[str]:
    """Every run record and result is the last acknowledged write or the one in flight; every
    result reads back (hash and size verified) as the payload it names. Returns the URIs of the
    referenced external payloads."""
    referenced: set[str] = set()
    for job_id in CRASH_RUNS:
        family = f"run:{job_id}"
        run = stores.job_runs.get(tenant, ENV, job_id)
        records = log.candidates(family, lambda op: op in {"fresh", "rmw"}, lambda op, gen: gen)
        assert (run.metadata["gen"] if run else None) in records, f"{job_id}: record is not one written"
        results = log.candidates(
            family, lambda op: op in {"fresh", "result"}, lambda op, gen: gen if op == "result" else None
        )
        if run is None or run.result is None:
            assert None in results, f"{job_id}: an acknowledged result is gone"
            continue
        data = stores.job_runs.get_result(tenant, ENV, job_id)  # raises if missing or corrupt
        owner, gen, size = parse_payload_header(data)
        assert owner == job_id, f"{job_id} points at the result of {owner}"
        assert gen in results, f"{job_id}: result generation {gen} is neither acknowledged nor in flight"
        assert data == crash_payload(job_id, gen, size)
        assert run.result.location == "external" and run.result.uri is not None
        referenced.add(run.result.uri)
    return referenced


def check_raw_files(location: Location) -> None:
    """File backends: every artifact file on disk is complete JSON (temp files aside)."""
    if location.root is None or not os.path.isdir(location.root):
        return
    for folder, _dirs, files in os.walk(location.root):
        for name in files:
            if name.endswith(".json") and not name.startswith("."):
                path = Path(folder) / name
                json.loads(path.read_bytes())  # a torn write would not parse


def write_traces(location: Location) -> int:
    """Traces an interrupted write leaves: torn payload temp files and lock files still carrying a
    writer's crash mark (file backends), index entries still marked pending (Blob)."""
    if location.backend == "blob":
        from azure.storage.blob import ContainerClient

        container = location.url.removeprefix("azure-blob://").split("/")[0]
        conn = location.options["connection_string"]
        with ContainerClient.from_connection_string(conn, container) as client:
            return sum(
                1
                for b in client.list_blobs(name_starts_with="dq/", include=["metadata"])
                if (b.metadata or {}).get("dqpending") == "1"
            )
    if location.root is None or not os.path.isdir(location.root):
        return 0
    found = 0
    for folder, _dirs, files in os.walk(location.root):
        for name in files:
            torn = name.endswith(".part")
            marked = name == ".lock" and (Path(folder) / name).read_bytes()[:1] == b"1"
            found += torn or marked
    return found


def payload_files(location: Location) -> set[str]:
    """Every file below the results folders of a file backend (temp files included)."""
    if location.root is None:
        return set()
    # The default results folders: <root>/.results for a filesystem store, dq.results beside dq.db.
    results = Path(location.root) / (".results" if location.backend == "filesystem" else "dq.results")
    if not results.is_dir():
        return set()
    return {p.as_uri() for p in results.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite"),
        pytest.param("filesystem"),
        pytest.param("blob", marks=pytest.mark.azurite),
    ],
)
def test_sigkill_mid_write_leaves_old_or_new_never_partial(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = make_location(backend, request, tmp_path)
    tenant = unique_id()
    kills = KILLS[backend]
    log_path = tmp_path / "writes.log"
    with location.open():
        pass  # the store (and an embedded SQLite schema) exists before the first child
    ctx = mp_context()
    rng = random.Random(7)
    killed_mid_run = 0
    mid_write = 0
    started = time.perf_counter()
    for n in range(kills):
        traces = write_traces(location)
        ready = ctx.Event()
        child = ctx.Process(target=crash_writer, args=(location, tenant, n + 1, ready, str(log_path)))
        child.start()
        assert ready.wait(30), "the writer never opened its stores"
        time.sleep(rng.uniform(0.01, 0.35))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            killed_mid_run += 1
        child.join(10)
        assert child.exitcode == -signal.SIGKILL, f"the writer stopped by itself (exit code {child.exitcode})"
        mid_write += write_traces(location) > traces
        log = WriteLog.read(log_path)
        with location.open() as stores:
            check_artifacts(stores, tenant, log, full_history=False)
            check_results(stores, tenant, log)
        check_raw_files(location)

    log = WriteLog.read(log_path)
    acknowledged = sum(acked for events in log.events.values() for _, _, acked in events)
    with location.open() as stores:
        revisions = check_artifacts(stores, tenant, log, full_history=True)
        referenced = check_results(stores, tenant, log)
        runs = stores.job_runs
        assert runs.payloads is not None
        listed = {p.uri for p in runs.payloads.list()}
        orphans = listed - referenced
        assert referenced <= listed
        removed = set(runs.gc_payloads(older_than=timedelta(0)))
        assert removed == orphans, "gc removed a referenced payload or left an orphan"
        assert {p.uri for p in runs.payloads.list()} == referenced
        assert check_results(stores, tenant, log) == referenced  # nothing referenced was collected
        if location.backend != "blob":
            # Not even a torn temp file of an interrupted payload write is left behind.
            assert payload_files(location) == referenced
    print(
        f"\n[{backend}] {killed_mid_run} SIGKILLs in {time.perf_counter() - started:.1f} s "
        f"(at least {mid_write} interrupted a write); "
        f"{acknowledged} acknowledged writes all found, {revisions} revisions checked, "
        f"{len(orphans)} orphaned payloads collected, "
        f"{len(referenced)} referenced kept"
    )


def test_failed_inline_result_replacement_keeps_the_old_result_readable(tmp_path: Path) -> None:
    """``put_result`` replacing a small (inline) SQL result must be all or nothing: when the run
    record cannot be updated (here a trigger makes the database refuse it, as a crash between the
    two steps would), the previous result still reads back with its verified hash."""
    import sqlite3

    from dq_stores.errors import StoreError
    from dq_stores.registry import open_stores
    from dq_stores.testing.builders import make_run

    url = f"sqlite:///{tmp_path}/dq.db"
    tenant = unique_id()
    with open_stores(url) as stores:
        stores.job_runs.put(make_run(tenant, ENV, "r1", status="running"))
        stores.job_runs.put_result(tenant, ENV, "r1", {"old": True})
    with sqlite3.connect(tmp_path / "dq.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_run_update BEFORE UPDATE ON dq_job_runs "
            "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
        )
    with open_stores(url) as stores:
        with pytest.raises(StoreError):
            stores.job_runs.put_result(tenant, ENV, "r1", {"new": True})
        assert json.loads(stores.job_runs.get_result(tenant, ENV, "r1")) == {"old": True}
