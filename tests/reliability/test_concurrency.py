"""Concurrent writers: separate processes doing read-modify-write with ``if_match`` lose no
update; a create-only race has exactly one winner; 20 threads recording job runs on Postgres see
no error and every acknowledged run is readable afterwards (throughput and p99 printed).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dq_stores.canonical import canonical_json
from dq_stores.registry import open_stores
from dq_stores.testing.builders import BASE_TIME, make_contract, make_run, replace_fields, unique_id
from tests.reliability.conftest import (
    ENV,
    Location,
    create_worker,
    drain,
    mp_context,
    open_worker,
    rmw_worker,
    run_children,
)

pytestmark = pytest.mark.reliability

PROCESSES = 16
UPDATES = int(os.environ.get("DQ_RMW_UPDATES", "200"))


def test_sixteen_processes_lose_no_if_match_update(location: Location) -> None:
    """16 processes x 200 read-modify-write increments of one run's counter through ``if_match``
    (retry on ``ConflictError``): the counter ends at exactly 3,200."""
    tenant = unique_id()
    with location.open() as stores:
        stores.job_runs.put(
            make_run(tenant, ENV, "counter", status="running", submitted_at=BASE_TIME, metadata={"count": 0})
        )
    ctx = mp_context()
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    started = time.perf_counter()
    run_children(
        ctx,
        rmw_worker,
        [(location, tenant, "counter", UPDATES, seed, barrier, results) for seed in range(PROCESSES)],
        timeout=270,  # under the 300 s pytest-timeout; Blob takes 90-170 s
    )
    elapsed = time.perf_counter() - started
    outcomes = drain(results, PROCESSES, timeout=5)
    errors = [o[1] for o in outcomes if o[0] != "ok"]
    assert not errors, errors
    with location.open() as stores:
        final = stores.job_runs.get(tenant, ENV, "counter")
    assert final is not None
    conflicts = sum(o[1] for o in outcomes)
    print(
        f"\n[{location.backend}] {PROCESSES}x{UPDATES} if_match increments: {elapsed:.1f} s, "
        f"{conflicts} conflicts retried, {PROCESSES * UPDATES / elapsed:.0f} updates/s"
    )
    assert final.metadata["count"] == PROCESSES * UPDATES, "an acknowledged if_match update was lost"
    assert final.status == "running"


def test_processes_creating_one_fresh_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Six processes open the same not-yet-existing SQLite store at the same instant (a Dagster
    multiprocess run on a fresh machine), ten times: every one of them gets a working store."""
    ctx = mp_context()
    failures = []
    for n in range(10):
        location = Location("sqlite", f"sqlite:///{tmp_path}/{n}/dq.db")
        barrier = ctx.Barrier(6)
        results = ctx.Queue()
        run_children(ctx, open_worker, [(location, barrier, results)] * 6, timeout=120)
        failures += [r for r in drain(results, 6, timeout=5) if r != "ok"]
    assert not failures, f"{len(failures)} of 60 opens failed, e.g. {failures[0]}"


ROUNDS = 10


def test_create_only_race_between_processes_has_one_winner(location: Location) -> None:
    """Two processes create the same contract version with different content, create-only, in
    ten rounds released by a barrier: each round exactly one wins, the other gets
    ``ConflictError``, history holds one revision and the stored content is the winner's."""
    tenant = unique_id()
    with location.open():
        pass  # an embedded SQLite store is created here, not by the racing children
    ctx = mp_context()
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    documents = [
        make_contract(tenant, ENV, "raced", "1.0.0", name=f"writer {w}", metadata={"writer": w}).model_dump(
            mode="json", exclude_unset=True
        )
        for w in range(2)
    ]
    run_children(
        ctx, create_worker, [(location, doc, barrier, results, ROUNDS) for doc in documents], timeout=120
    )
    outcomes = drain(results, 2 * ROUNDS, timeout=5)
    errors = [o for o in outcomes if o[1] == "error"]
    assert not errors, errors
    with location.open() as stores:
        for n in range(ROUNDS):
            version = f"1.0.{n}"
            this_round = sorted(o for o in outcomes if o[0] == n)
            assert [o[1] for o in this_round] == ["conflict", "won"], (version, this_round)
            winner = this_round[1]
            entry = stores.contracts.get_entry(tenant, ENV, "raced", version)
            assert entry is not None
            assert entry.etag == winner[2], "the stored revision is not the one the winner was told"
            assert entry.artifact.metadata["writer"] == winner[3]
            history = stores.contracts.history(tenant, ENV, "raced", version)
            assert len(history) == 1, f"{version}: {len(history)} revisions after a create-only race"
            assert history[0].etag == entry.etag


SOAK_THREADS = 20


@pytest.mark.postgres
@pytest.mark.slow
def test_soak_twenty_threads_recording_runs_on_postgres(
    pg_url: str, make_pg_schema: Callable[[], str]
) -> None:
    """20 threads record job runs (create running, finish with if_match, attach an inline result)
    for DQ_SOAK_SECONDS (default 10; ``make soak``: 60): no error, and every acknowledged run reads
    back exactly as acknowledged. Prints throughput and latency percentiles."""
    seconds = float(os.environ.get("DQ_SOAK_SECONDS", "10"))
    tenant = unique_id()
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(SOAK_THREADS)]
    acknowledged: list[dict[str, bytes]] = [{} for _ in range(SOAK_THREADS)]
    errors: list[str] = []
    with open_stores(pg_url, schema=make_pg_schema()) as stores:
        runs = stores.job_runs

        def timed_call(lat: list[float], fn: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            value = fn()
            lat.append(time.perf_counter() - started)
            return value

        def record(worker: int) -> None:
            lat, acked = latencies[worker], acknowledged[worker]
            n = 0
            while not stop.is_set():
                job_id = f"w{worker}-{n}"
                n += 1
                try:
                    now = datetime.now(UTC)
                    run = make_run(tenant, ENV, job_id, status="running", submitted_at=now, started_at=now)
                    etag = timed_call(lat, lambda: runs.put(run, create_only=True))  # noqa: B023
                    done = replace_fields(
                        run,
                        status="succeeded",
                        completed_at=datetime.now(UTC).isoformat(),
                        summary={"row_count": n, "pass_rate": 1.0},
                    )
                    timed_call(lat, lambda: runs.put(done, if_match=etag))  # noqa: B023
                    body = {"job_id": job_id, "rows": n, "rules": [{"rule": "not_null", "failed": 0}]}
                    timed_call(lat, lambda: runs.put_result(tenant, ENV, job_id, body))  # noqa: B023
                    acked[job_id] = canonical_json(body)
                except Exception as exc:  # counted: the test requires zero
                    errors.append(f"{job_id}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=record, args=(w,)) for w in range(SOAK_THREADS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        elapsed = time.perf_counter() - started
        assert not any(t.is_alive() for t in threads), "a recording thread hung"

        all_lat = sorted(x for lat in latencies for x in lat)
        acked_runs = {job_id: body for acked in acknowledged for job_id, body in acked.items()}
        p50, p99 = all_lat[len(all_lat) // 2], all_lat[int(len(all_lat) * 0.99)]
        print(
            f"\n[postgres soak] {SOAK_THREADS} threads, {elapsed:.1f} s: {len(acked_runs)} runs "
            f"({len(acked_runs) / elapsed:.0f} runs/s, {len(all_lat) / elapsed:.0f} calls/s), "
            f"call latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {all_lat[-1] * 1000:.1f} ms; "
            f"{len(errors)} errors"
        )
        assert not errors, errors[:5]
        assert len(acked_runs) > SOAK_THREADS, "the soak recorded almost nothing"
        listed = {r.job_id: r for r in runs.list_by_tenant(tenant, ENV)}
        for job_id, body in acked_runs.items():
            stored = listed.get(job_id)
            assert stored is not None, f"acknowledged run {job_id} is missing"
            assert stored.status == "succeeded" and stored.result is not None, job_id
            assert runs.get_result(tenant, ENV, job_id) == body, job_id
        # Each thread finishes the run it started before it stops: nothing unacknowledged exists.
        assert set(listed) == set(acked_runs)
