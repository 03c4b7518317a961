"""Connection handling of the SQL engine on real PostgreSQL: connections the server killed are
replaced without the caller noticing (reads), writes are never retried blindly, and a call on a
busy pool costs one round trip (no ping before each use; ``pool_pre_ping`` is gone).

Connections are killed the way an administrator or a failover does: ``pg_terminate_backend`` on
the sessions of this test's ``application_name``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dq_stores.errors import BackendUnavailableError
from dq_stores.registry import Stores, open_stores
from dq_stores.sql.engine import IDLE_PING_SECONDS
from dq_stores.testing.builders import BASE_TIME, make_run, unique_id
from tests.plugins.postgres import PG_DSN
from tests.reliability._proxy import TcpProxy, matches

pytestmark = pytest.mark.postgres

ENV = "prod"
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"
"""The server's last message of every reply: one per round trip."""


@pytest.fixture
def app_stores(pg_url: str, pg_schema: str) -> Iterator[tuple[Stores, str]]:
    app = f"dqpool-{uuid.uuid4().hex[:12]}"
    stores = open_stores(pg_url, schema=pg_schema, auto_upgrade=True, connect_args={"application_name": app})
    try:
        yield stores, app
    finally:
        stores.close()


def _sessions(app: str) -> set[int]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchall()
    return {int(r[0]) for r in rows}


def _kill(app: str) -> int:
    """Terminate every session of ``app``; returns how many there were."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        ).fetchone()
    assert row is not None
    deadline = time.monotonic() + 5
    while _sessions(app) and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(row[0])


def test_a_read_on_a_killed_connection_is_retried_on_a_fresh_one(app_stores: tuple[Stores, str]) -> None:
    stores, app = app_stores
    tenant = unique_id()
    stores.job_runs.put(make_run(tenant, ENV, "r", submitted_at=BASE_TIME))
    assert stores.job_runs.get(tenant, ENV, "r") is not None
    before = _sessions(app)
    assert _kill(app) >= 1
    # At once (no idle ping yet): the dead connection fails the first try, the read runs again.
    found = stores.job_runs.get(tenant, ENV, "r")
    assert found is not None
    assert found.job_id == "r"
    assert _sessions(app).isdisjoint(before)
    assert [r.job_id for r in stores.job_runs.list(tenant, ENV)] == ["r"]


def test_a_write_after_an_idle_kill_succeeds(app_stores: tuple[Stores, str]) -> None:
    stores, app = app_stores
    tenant = unique_id()
    stores.job_runs.put(make_run(tenant, ENV, "first", submitted_at=BASE_TIME))
    assert _kill(app) >= 1
    # Idle for longer than the ping threshold: the checkout ping finds the connection dead and
    # the pool hands out a fresh one, so even a write (never retried) does not notice.
    time.sleep(IDLE_PING_SECONDS + 0.3)
    stores.job_runs.put(make_run(tenant, ENV, "second", submitted_at=BASE_TIME))
    assert {r.job_id for r in stores.job_runs.list(tenant, ENV)} == {"first", "second"}


def test_a_write_right_after_a_kill_fails_once_and_is_not_retried(app_stores: tuple[Stores, str]) -> None:
    stores, app = app_stores
    tenant = unique_id()
    stores.job_runs.put(make_run(tenant, ENV, "first", submitted_at=BASE_TIME))
    assert _kill(app) >= 1
    # Within the ping threshold the dead connection is used: the write fails cleanly (it might
    # have committed, so it is not repeated behind the caller's back) ...
    with pytest.raises(BackendUnavailableError):
        stores.job_runs.put(make_run(tenant, ENV, "second", submitted_at=BASE_TIME))
    # ... and the pool has dropped the dead connection: the caller's retry succeeds.
    stores.job_runs.put(make_run(tenant, ENV, "second", submitted_at=BASE_TIME))
    assert {r.job_id for r in stores.job_runs.list(tenant, ENV)} == {"first", "second"}


def test_get_and_put_of_a_run_are_one_round_trip_on_a_busy_pool(pg_url: str, pg_schema: str) -> None:
    upstream = make_url(pg_url)
    with TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
        url = upstream.set(port=proxy.port).render_as_string(hide_password=False)
        with open_stores(url, schema=pg_schema, auto_upgrade=True) as stores:
            tenant = unique_id()
            run = make_run(tenant, ENV, "r", status="running", submitted_at=BASE_TIME)
            stores.job_runs.put(run)

            def round_trips(call: object) -> int:
                proxy.trace = []
                assert callable(call)
                call()
                trace, proxy.trace = proxy.trace, None
                return sum(matches(READY_FOR_QUERY, chunk) for direction, chunk in trace if direction == "<")

            assert round_trips(lambda: stores.job_runs.get(tenant, ENV, "r")) == 1
            changed = make_run(tenant, ENV, "r", status="running", submitted_at=BASE_TIME, metadata={"n": 1})
            assert round_trips(lambda: stores.job_runs.put(changed)) == 1
            assert round_trips(lambda: stores.job_runs.list(tenant, ENV)) == 1
            # Idle for longer than the threshold: one ping first, then the statement.
            time.sleep(IDLE_PING_SECONDS + 0.3)
            assert round_trips(lambda: stores.job_runs.get(tenant, ENV, "r")) == 2


def test_concurrent_gets_stay_within_the_pool_and_lane_bounds(app_stores: tuple[Stores, str]) -> None:
    """16 threads reading at once: every read right, and the process never opens more sessions than
    its pool allows (5 + 10 overflow; the fast lane's connections are the pool's), so a burst is
    no connection storm."""
    from concurrent.futures import ThreadPoolExecutor

    stores, app = app_stores
    tenant = unique_id("t")
    runs = [make_run(tenant, ENV, f"r{i}", submitted_at=BASE_TIME) for i in range(16)]
    for run in runs:
        stores.job_runs.put(run)
    peak = 0

    def reads(i: int) -> bool:
        return all(stores.job_runs.get(tenant, ENV, f"r{i}") == runs[i] for _ in range(40))

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(reads, i) for i in range(16)]
        while not all(f.done() for f in futures):
            peak = max(peak, len(_sessions(app)))
            time.sleep(0.01)
        assert all(f.result() for f in futures)
    assert 0 < peak <= 5 + 10, peak


def test_a_forked_child_opens_its_own_connections_and_the_parent_keeps_working(
    app_stores: tuple[Stores, str],
) -> None:
    """After ``fork`` the child must not use (nor close) the parent's sessions: it forgets them."""
    import multiprocessing

    stores, app = app_stores
    tenant = unique_id("t")
    run = make_run(tenant, ENV, "r", submitted_at=BASE_TIME)
    stores.job_runs.put(run)
    assert stores.job_runs.get(tenant, ENV, "r") == run
    before = _sessions(app)

    def child(queue: multiprocessing.Queue[str]) -> None:
        got = stores.job_runs.get(tenant, ENV, "r")
        queue.put("ok" if got == run else "wrong")

    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == "ok"
    # The parent's sessions survived the child's exit, and the parent reads on as before.
    assert before <= _sessions(app)
    assert stores.job_runs.get(tenant, ENV, "r") == run
