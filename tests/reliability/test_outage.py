"""Database outages: a TCP proxy (``tests/reliability/_proxy.py``) between the stores and
PostgreSQL cuts connections at chosen moments and refuses new ones for a while.

Guarantees checked here:

* an in-flight call whose connection is cut raises ``BackendUnavailableError`` (never a driver or
  SQLAlchemy error), and so does every call while the database refuses connections;
* nothing half-written stays: for every write operation, a cut at *each* of its write statements
  and at each of its commits (before the server sees it, and after the server committed but
  before the client heard back) leaves what a reader sees either exactly as before or exactly as
  after the operation, never in between, and no record points at a missing result;
* the same store object recovers by itself once connections are accepted again, and retrying the
  failed call ends in the intended state (a conditional write whose commit did happen gets
  ``ConflictError`` on the retry, and the client's re-read shows its write);
* writers in several threads through an outage: every acknowledged write is there afterwards;
* a Dagster run whose IO manager hits an outage succeeds after a ``RetryPolicy`` retry and records
  the job run exactly once.
"""

# No ``from __future__ import annotations``: Dagster reads the asset's parameter annotations.

import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dq_stores.errors import BackendUnavailableError, ConflictError
from dq_stores.registry import Stores, open_stores
from dq_stores.testing.builders import BASE_TIME, make_contract, make_run, unique_id
from tests.plugins.postgres import PG_DSN
from tests.reliability._proxy import TcpProxy, matches

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

ENV = "prod"

# PostgreSQL wire protocol, as psycopg 3 speaks it: a statement is a Parse message ('P', length,
# statement name, query text); COMMIT is a simple Query ('Q'); the server ends every reply with
# ReadyForQuery ('Z', length 5, status: 'I' idle = no transaction open, 'T' = inside one).
WRITE_MESSAGE = re.compile(
    rb"Q\x00\x00\x00\x0bCOMMIT\x00|P\x00\x00..[^\x00]*\x00(?:INSERT|UPDATE|DELETE) ", re.S
)
"""A client message that changes data or commits: each is a point where a cut must be safe."""
COMMITTED_REPLY = re.compile(
    rb"C\x00\x00\x00.(?:COMMIT|INSERT 0 \d+|UPDATE \d+|DELETE \d+)\x00Z\x00\x00\x00\x05I", re.S
)
"""The server's reply that a write is durable (a COMMIT, or a write in autocommit, then idle)."""


# -- fixtures and helpers --------------------------------------------------------------------------


@dataclass
class Outage:
    proxy: TcpProxy
    schema: str
    url: str
    """The store URL through the proxy."""
    direct_url: str
    """The same database, not through the proxy (for checking what is really stored)."""

    def open(self) -> Stores:
        # No automatic server-side prepared statements: every execution then sends its SQL text,
        # so a dry run and the real run cross the same points (psycopg prepares a query after 5
        # executions on one connection, which would hide the text the cut points look for).
        return open_stores(self.url, schema=self.schema, connect_args={"prepare_threshold": None})

    def direct(self) -> Stores:
        return open_stores(self.direct_url, schema=self.schema)


@pytest.fixture
def outage(pg_url: str, make_pg_schema: Callable[[], str]) -> Iterator[Outage]:
    schema = make_pg_schema()
    upstream = make_url(pg_url)
    with TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
        url = upstream.set(port=proxy.port).render_as_string(hide_password=False)
        yield Outage(proxy, schema, url, pg_url)


def expect_unavailable(call: Callable[[], Any]) -> BackendUnavailableError:
    """Run ``call``; it must raise ``BackendUnavailableError`` and nothing else."""
    raised: BaseException | None = None
    try:
        call()
    except BaseException as exc:
        raised = exc
    if raised is None:
        pytest.fail("the call succeeded although its connection was cut")
    if not isinstance(raised, BackendUnavailableError):
        pytest.fail(
            f"expected BackendUnavailableError, got {type(raised).__module__}.{type(raised).__name__}:\n"
            + "".join(traceback.format_exception(raised))
        )
    assert str(raised), "an empty message"
    assert isinstance(raised.__cause__, Exception), "the driver error is kept as __cause__"
    return raised


def eventually(call: Callable[[], Any], timeout: float = 10.0) -> tuple[Any, int]:
    """``call()`` retried on ``BackendUnavailableError`` only; returns (result, failures)."""
    deadline = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            return call(), failures
        except BackendUnavailableError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- the operations and what a reader sees of them ---------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """A write (a client retries it by calling it again) and what a reader sees of it."""

    name: str
    setup: Callable[[Stores, str], Any]
    run: Callable[[Stores, str, Any], Any]
    view: Callable[[Stores, str], Any]
    """What a reader sees (tenant-independent, etag-free), to compare with before and after."""
    conditional: bool = False
    """Written with ``if_match``: when the lost reply hid a commit that did happen, the retry
    rightly gets ``ConflictError`` (the etag moved on - to this very write, but no store can tell
    that apart from another writer's identical change), and the client re-reads."""


def _contract_view(stores: Stores, tenant: str) -> Any:
    store = stores.contracts
    current = store.get(tenant, ENV, "c", "1.0.0")
    history = store.history(tenant, ENV, "c", "1.0.0")
    names = []
    for rev in history:
        doc = store.get_revision(tenant, ENV, "c", "1.0.0", rev.revision)
        names.append(doc.name if doc is not None else None)
    latest = {
        t: (c.name if c is not None else None)
        for t in ("billing", "orders")
        for c in [store.get_latest_for_dataset(tenant, ENV, t)]
    }
    return (current.name if current else None, names, latest)


def _run_view(stores: Stores, tenant: str, job_ids: tuple[str, ...] = ("r",)) -> Any:
    out = []
    for job_id in job_ids:
        run = stores.job_runs.get(tenant, ENV, job_id)
        if run is None:
            out.append(None)
            continue
        result = None
        if run.result is not None:
            # A record that points at a result must be able to deliver it, hash-verified.
            result = (run.result.sha256, stores.job_runs.get_result(tenant, ENV, job_id))
        out.append((str(run.status), dict(run.metadata), result))
    return out


def _put_contract_update(stores: Stores, tenant: str, etag: str) -> str:
    return stores.contracts.put(
        make_contract(tenant, ENV, "c", name="second", dataset_types=["orders"]), if_match=etag
    )


MANY = tuple(f"m{i:02d}" for i in range(5))

OPERATIONS = [
    Operation(
        "contract-update-if-match",
        lambda s, t: s.contracts.put(make_contract(t, ENV, "c", name="first", dataset_types=["billing"])),
        lambda s, t, etag: _put_contract_update(s, t, etag),
        _contract_view,
        conditional=True,
    ),
    Operation(
        "contract-create",
        lambda s, t: None,
        lambda s, t, _: s.contracts.put(make_contract(t, ENV, "c", name="new", dataset_types=["billing"])),
        _contract_view,
    ),
    Operation(
        "contract-delete",
        lambda s, t: s.contracts.put(make_contract(t, ENV, "c", name="doomed")),
        lambda s, t, _: s.contracts.delete(t, ENV, "c", "1.0.0"),
        _contract_view,
    ),
    Operation(
        "run-update-if-match",
        lambda s, t: s.job_runs.put(make_run(t, ENV, "r", status="running", submitted_at=BASE_TIME)),
        lambda s, t, etag: s.job_runs.put(
            make_run(t, ENV, "r", status="succeeded", submitted_at=BASE_TIME, metadata={"n": 1}),
            if_match=etag,
        ),
        _run_view,
        conditional=True,
    ),
    Operation(
        "run-create",
        lambda s, t: None,
        lambda s, t, _: s.job_runs.put(make_run(t, ENV, "r", submitted_at=BASE_TIME)),
        _run_view,
    ),
    Operation(
        "put-result-inline",
        lambda s, t: s.job_runs.put(make_run(t, ENV, "r", submitted_at=BASE_TIME)),
        lambda s, t, _: s.job_runs.put_result(t, ENV, "r", {"rows": 1000, "passed": True}),
        _run_view,
    ),
    Operation(
        "delete-with-result",
        lambda s, t: (
            s.job_runs.put(make_run(t, ENV, "r", submitted_at=BASE_TIME)),
            s.job_runs.put_result(t, ENV, "r", {"rows": 1}),
        ),
        lambda s, t, _: s.job_runs.delete_with_result(t, ENV, "r"),
        _run_view,
    ),
    Operation(
        "put-many-5-runs",
        lambda s, t: None,
        lambda s, t, _: s.job_runs.put_many([make_run(t, ENV, j, submitted_at=BASE_TIME) for j in MANY]),
        lambda s, t: _run_view(s, t, MANY),
    ),
]


def _cut_points(outage: Outage, stores: Stores, op: Operation) -> tuple[int, int, Any, Any]:
    """Dry-run ``op`` on a twin tenant: how many write messages and durable replies it has, and
    what a reader sees before and after it."""
    twin = unique_id("twin")
    ctx = op.setup(stores, twin)
    before = op.view(stores, twin)
    outage.proxy.trace = []
    try:
        op.run(stores, twin, ctx)
    finally:
        trace, outage.proxy.trace = outage.proxy.trace, None
    after = op.view(stores, twin)
    sent = sum(matches(WRITE_MESSAGE, chunk) for d, chunk in trace if d == ">")
    replies = sum(matches(COMMITTED_REPLY, chunk) for d, chunk in trace if d == "<")
    assert sent and replies, f"{op.name}: no write seen on the wire"
    assert before != after, f"{op.name}: the operation changes nothing a reader sees"
    return sent, replies, before, after


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_a_cut_at_any_write_or_commit_leaves_before_or_after_never_between(
    outage: Outage, op: Operation
) -> None:
    with outage.open() as stores:
        sent, replies, before, after = _cut_points(outage, stores, op)
        points = [(False, k) for k in range(sent)] + [(True, k) for k in range(replies)]
        outcomes = []
        for to_client, skip in points:
            where = f"{op.name}: cut at {'reply' if to_client else 'write'} #{skip + 1}"
            tenant = unique_id("t")
            ctx = op.setup(stores, tenant)
            assert op.view(stores, tenant) == before, where
            trigger = outage.proxy.cut_on(
                COMMITTED_REPLY if to_client else WRITE_MESSAGE,
                to_client=to_client,
                skip=skip,
                refuse_for=0.1,
            )
            try:
                expect_unavailable(lambda: op.run(stores, tenant, ctx))  # noqa: B023 (called at once)
            finally:
                outage.proxy.disarm()
            assert trigger.fired.is_set(), f"{where}: the cut point was never reached"
            # What is really stored, read past the proxy.
            with outage.direct() as direct:
                seen = op.view(direct, tenant)
            assert seen in (before, after), f"{where}: half-written state {seen!r}"
            outcomes.append("after" if seen == after else "before")
            # The same store object, once the database is reachable again: retry the call as a
            # client would (same arguments, same if_match etag), and it ends as intended.
            assert outage.proxy.wait_accepting(5)
            try:
                _, failures = eventually(lambda: op.run(stores, tenant, ctx))  # noqa: B023
            except ConflictError:
                assert op.conditional and seen == after, f"{where}: ConflictError on retry"
            else:
                assert failures == 0, f"{where}: {failures} call(s) failed after the database came back"
            assert op.view(stores, tenant) == after, where
        # A cut at the first write loses it all; a lost reply to the last commit keeps it all.
        assert outcomes[0] == "before" and outcomes[-1] == "after", outcomes


def test_in_flight_and_new_calls_fail_cleanly_while_refused_then_recover(outage: Outage) -> None:
    refused_for = 2.0
    with outage.open() as stores:
        tenant = unique_id("t")
        etag = stores.contracts.put(make_contract(tenant, ENV, "c", name="first", dataset_types=["billing"]))
        stores.job_runs.put(make_run(tenant, ENV, "r", submitted_at=BASE_TIME))
        trigger = outage.proxy.cut_on(b"COMMIT", refuse_for=refused_for)
        started = time.monotonic()
        expect_unavailable(lambda: _put_contract_update(stores, tenant, etag))
        assert trigger.fired.is_set()
        # While refused: every kind of call fails fast and cleanly (no hang until a timeout).
        calls: list[Callable[[], Any]] = [
            lambda: stores.contracts.get(tenant, ENV, "c"),
            lambda: stores.contracts.list(tenant, ENV),
            lambda: stores.job_runs.get(tenant, ENV, "r"),
            lambda: stores.job_runs.list(tenant, ENV),
            lambda: list(stores.job_runs.list_by_tenant(tenant)),
            lambda: stores.job_runs.put(make_run(tenant, ENV, "r2")),
            lambda: stores.job_runs.put_result(tenant, ENV, "r", {"x": 1}),
            lambda: stores.contracts.delete(tenant, ENV, "c"),
        ]
        for call in calls:
            t0 = time.monotonic()
            expect_unavailable(call)
            assert time.monotonic() - t0 < 1.0, "a refused connection must fail fast"
        assert outage.proxy.refusing, "the calls outlasted the outage window: raise refused_for"
        # Recovery by itself: poll reads until one succeeds; it must be within the window + 1 s.
        eventually(lambda: stores.contracts.get(tenant, ENV, "c"), timeout=refused_for + 5)
        assert time.monotonic() - started < refused_for + 1.0
        current = stores.contracts.get(tenant, ENV, "c")
        assert current is not None and current.name == "first"
        assert len(stores.contracts.history(tenant, ENV, "c", "1.0.0")) == 1
        # Retrying the failed write with the same if_match works; every other call works again.
        _put_contract_update(stores, tenant, etag)
        stores.job_runs.put(make_run(tenant, ENV, "r2"))
        stores.job_runs.put_result(tenant, ENV, "r", {"x": 1})
        assert stores.job_runs.get_result_model(tenant, ENV, "r") == {"x": 1}
        assert [r.name for r in stores.contracts.iter_all(tenant, ENV)] == ["second"]


def test_connections_cut_while_idle_in_the_pool_cost_at_most_one_failed_write(outage: Outage) -> None:
    """A network blip or a server restart while no call is in flight kills every pooled
    connection. Reads never notice (a read found on a dead connection is retried); a write cannot
    be retried blindly (it may have committed), so the first write that meets a dead connection
    may fail with ``BackendUnavailableError`` - but only that one: the store must then drop every
    pooled connection, not meet them one by one (SQLAlchemy's own "optimistic" disconnect rule).
    """
    with outage.open() as stores:
        tenant = unique_id("t")
        stores.job_runs.put(make_run(tenant, ENV, "seed"))
        for _round in range(2):
            _fill_pool(stores, tenant, 4)
            assert outage.proxy.open_connections >= 3
            assert outage.proxy.cut() >= 3
            for i in range(8):
                assert stores.job_runs.get(tenant, ENV, "seed") is not None, f"read {i} after the cut"
            _fill_pool(stores, tenant, 4)
            outage.proxy.cut()
            failures = []
            for i in range(8):
                try:
                    stores.job_runs.put(make_run(tenant, ENV, f"after-{_round}-{i}"))
                except BackendUnavailableError as exc:
                    failures.append(f"write {i}: {exc}")
            assert len(failures) <= 1, failures


def _fill_pool(stores: Stores, tenant: str, count: int) -> None:
    """Make the pool hold ``count`` connections (calls made in parallel), then leave them idle."""
    barrier = threading.Barrier(count)

    def busy(i: int) -> None:
        barrier.wait(10)
        stores.job_runs.list(tenant, ENV)
        stores.job_runs.put(make_run(tenant, ENV, f"warm-{i}"))

    threads = [threading.Thread(target=busy, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_writers_in_threads_through_an_outage_lose_no_acknowledged_write(outage: Outage) -> None:
    tenant = unique_id("t")
    acknowledged: list[str] = []
    failed: list[str] = []
    unexpected: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    with outage.open() as stores:

        def writer(w: int) -> None:
            n = 0
            while not stop.is_set():
                job_id = f"w{w}-{n:05d}"
                n += 1
                try:
                    stores.job_runs.put(make_run(tenant, ENV, job_id, metadata={"writer": w}))
                    stores.job_runs.put_result(tenant, ENV, job_id, {"n": n})
                except BackendUnavailableError:
                    with lock:
                        failed.append(job_id)
                    time.sleep(0.02)
                except BaseException as exc:
                    with lock:
                        unexpected.append(f"{job_id}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
                else:
                    with lock:
                        acknowledged.append(job_id)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        outage.proxy.outage(1.0)
        time.sleep(1.8)
        with lock:
            before_stop = len(acknowledged)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not unexpected, unexpected[:5]
        assert failed, "the outage never reached a writer"
        assert len(acknowledged) > before_stop, "the writers did not recover after the outage"

    with outage.direct() as direct:
        stored = {run.job_id: run for run in direct.job_runs.list_by_tenant(tenant, ENV)}
        for job_id in acknowledged:
            run = stored.get(job_id)
            assert run is not None, f"acknowledged run {job_id} is missing"
            assert run.result is not None, f"acknowledged result of {job_id} is not attached"
            assert direct.job_runs.get_result_model(tenant, ENV, job_id) == {"n": int(job_id[-5:]) + 1}
        for job_id in failed:
            run = stored.get(job_id)
            if run is not None and run.result is not None:
                # A failed call may still have committed (the reply was lost): then it is whole.
                direct.job_runs.get_result(tenant, ENV, job_id)
    print(
        f"\n[outage] {len(acknowledged)} runs acknowledged, {len(failed)} calls failed cleanly during "
        "a 1 s outage, 0 acknowledged writes lost"
    )


# -- Dagster ---------------------------------------------------------------------------------------


@pytest.mark.dagster
@pytest.mark.parametrize(
    ("to_client", "skip"),
    [(False, 0), (False, 2), (True, 0), (True, -1)],
    ids=["first-write-lost", "third-write-lost", "first-reply-lost", "last-reply-lost"],
)
def test_dagster_run_retries_through_an_outage_and_records_the_job_run_once(
    outage: Outage, to_client: bool, skip: int
) -> None:
    """On its first attempt the asset arms a cut of ``handle_output``'s traffic (at its first or
    third write statement, or at the reply to its first or last durable write) with a short
    refusal; the step's RetryPolicy retries it on the same resources, which must have recovered."""
    from dagster import AssetExecutionContext, DagsterInstance, RetryPolicy, asset, materialize

    from dq_dagster.io_manager import JobRunIOManager
    from dq_dagster.resources import DQStoresResource
    from dq_stores.models import ValidationReport
    from dq_stores.scope import Scope
    from dq_stores.scoped import ScopedJobRunStore
    from dq_stores.writer import JobRunWriter, OutputOrigin

    tenant = unique_id("t")
    report = ValidationReport(
        tenant_id=tenant,
        environment=ENV,
        contract_id="billing-contract",
        contract_version="2.1.0",
        dataset_type="billing",
        started_at=BASE_TIME,
        completed_at=BASE_TIME,
        status="passed",
        row_count=1000,
        rows_failed=0,
        pass_rate=1.0,
        rules=[],
    )
    armed: list[Any] = []
    if skip < 0:  # count the durable writes of one handle_output (a dry run on a twin tenant)
        with outage.open() as stores:
            twin = unique_id("twin")
            outage.proxy.trace = []
            JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(twin, ENV))).write(
                report.model_copy(update={"tenant_id": twin}), OutputOrigin(run_id="dry-run")
            )
            trace, outage.proxy.trace = outage.proxy.trace, None
            skip = sum(matches(COMMITTED_REPLY, chunk) for d, chunk in trace if d == "<") - 1

    @asset(retry_policy=RetryPolicy(max_retries=3, delay=0.6))
    def checked_invoices(context: AssetExecutionContext) -> ValidationReport:
        if context.retry_number == 0:
            marker = COMMITTED_REPLY if to_client else WRITE_MESSAGE
            armed.append(outage.proxy.cut_on(marker, skip=skip, to_client=to_client, refuse_for=0.3))
        return report

    stores = DQStoresResource(url=outage.url, schema=outage.schema)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [checked_invoices],
            resources={"io_manager": JobRunIOManager(stores=stores, tenant=tenant, environment=ENV)},
            instance=instance,
            raise_on_error=False,
        )
        events = instance.all_logs(result.run_id)
    assert armed and armed[0].fired.is_set(), "the outage never hit handle_output"
    assert result.success, [e.message for e in events if e.is_failure_event or e.dagster_event is None][:5]
    retries = [
        e
        for e in events
        if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert len(retries) == 1
    error = retries[0].dagster_event.step_retry_data.error  # type: ignore[union-attr]
    # The step failed with our error, not the driver's (Dagster wraps it: look down the chain).
    names = []
    while error is not None:
        names.append(error.cls_name)
        error = error.cause
    assert "BackendUnavailableError" in names, names
    assert names.index("BackendUnavailableError") < min(
        (i for i, n in enumerate(names) if n in {"OperationalError", "InterfaceError"}), default=len(names)
    ), names

    with outage.direct() as direct:
        runs = list(direct.job_runs.list_by_tenant(tenant, ENV))
        assert len(runs) == 1, f"{len(runs)} job runs recorded for one asset materialization"
        run = runs[0]
        assert run.orchestrator is not None and run.orchestrator.run_id == result.run_id
        assert run.result is not None
        assert direct.job_runs.get_result_model(tenant, ENV, run.job_id) == report
    with psycopg.connect(PG_DSN) as conn:
        for table in ("dq_job_runs", "dq_job_run_results"):
            count = conn.execute(
                f'SELECT count(*) FROM "{outage.schema}".{table} WHERE tenant = %s', (tenant,)
            ).fetchone()
            assert count == (1,), f"{table}: {count}"
