"""Conformance tests of ``JobRunStore``: upsert, status transitions, filters, newest-first order,
keyset pagination with ties, ``list_by_tenant`` across environments, delete and bad input.

This module holds tests only; the fixtures they use (``stores``, ``tenant``) are defined by
``StoreConformance``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dq_stores.base import JobRunStore, RunFilters
from dq_stores.canonical import sha256_hex
from dq_stores.errors import ConflictError, InvalidArtifactError
from dq_stores.inputs import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from dq_stores.models import ALLOWED_TRANSITIONS, JobRun, JobRunStatus, JobType
from dq_stores.stores import Stores
from dq_stores.testing._cases import assert_invalid, canon, collect_pages, pager
from dq_stores.testing.builders import BASE_TIME, load_fixture, make_run, replace_fields

ENV = "dev"
T = [BASE_TIME + timedelta(minutes=i) for i in range(10)]


def _job_ids(runs: Any) -> list[str]:
    return [r.job_id for r in runs]


def _newest_first(runs: list[JobRun]) -> list[str]:
    ordered = sorted(runs, key=lambda r: (r.sort_time, r.job_id, r.environment), reverse=True)
    return [r.job_id for r in ordered]


class JobRunTests:
    # -- round trip and upsert ------------------------------------------------------------------
    def test_run_fixture_round_trips_byte_identical(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        document = load_fixture("job_runs", tenant=tenant, environment="prod")
        expected = canon(document)
        etag = store.put(document)
        got = store.get(tenant, "prod", document["job_id"])
        assert got is not None
        assert type(got) is JobRun
        assert canon(got) == expected
        entry = store.get_entry(tenant, "prod", document["job_id"])
        assert entry is not None
        assert (entry.etag, entry.content_hash) == (etag, sha256_hex(expected))
        assert [canon(r) for r in store.list(tenant, "prod")] == [expected]
        assert [canon(r) for r in store.list_by_tenant(tenant)] == [expected]

    def test_run_times_come_back_in_utc(self, stores: Stores, tenant: str) -> None:
        plus_two = timezone(timedelta(hours=2))
        run = make_run(
            tenant,
            ENV,
            "tz",
            submitted_at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=plus_two),
            started_at=datetime(2024, 5, 1, 12, 0, 1),  # naive: taken as UTC
        )
        stores.job_runs.put(run)
        got = stores.job_runs.get(tenant, ENV, "tz")
        assert got is not None
        assert got.submitted_at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        assert got.started_at == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
        assert b'"submitted_at":"2024-05-01T12:00:00.123456Z"' in canon(got)
        assert canon(got) == canon(run)

    def test_run_upsert(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        pending = make_run(tenant, ENV, "r1", status="pending", submitted_at=T[0])
        e1 = store.put(pending)
        assert store.put(pending) == e1, "identical content is a no-op"
        running = replace_fields(pending, status="running", started_at=T[1].isoformat())
        e2 = store.put(running)
        assert e2 != e1
        assert store.get(tenant, ENV, "r1") == running
        done = replace_fields(running, status="succeeded", summary={"row_count": 10, "pass_rate": 1.0})
        e3 = store.put(done)
        assert e3 not in (e1, e2)
        entry = store.get_entry(tenant, ENV, "r1")
        assert entry is not None
        assert entry.artifact == done
        assert entry.etag == e3
        assert entry.content_hash == sha256_hex(canon(done))
        # A terminal run may be re-put with the same status (e.g. to add action outcomes).
        with_actions = replace_fields(
            done, actions=[{"action_type": "SEND_NOTIFICATION", "status": "succeeded"}]
        )
        assert store.put(with_actions) != e3
        assert _job_ids(store.list(tenant, ENV)) == ["r1"]

    def test_run_if_match_and_create_only(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        run = make_run(tenant, ENV, "r1", status="running", submitted_at=T[0])
        stale = store.put(run, create_only=True)
        current = store.put(replace_fields(run, message="progress"), if_match=stale)
        with pytest.raises(ConflictError):
            store.put(replace_fields(run, message="lost update"), if_match=stale)
        with pytest.raises(ConflictError):
            store.put(run, create_only=True)
        with pytest.raises(ConflictError):
            store.put(make_run(tenant, ENV, "never-stored"), if_match=current)
        assert store.get(tenant, ENV, "never-stored") is None
        entry = store.get_entry(tenant, ENV, "r1")
        assert entry is not None
        assert entry.etag == current
        assert entry.artifact.message == "progress"

    def test_status_transitions(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        for old in JobRunStatus:
            for new in JobRunStatus:
                job_id = f"tr-{old.value}-{new.value}"
                store.put(make_run(tenant, ENV, job_id, status=old.value, submitted_at=T[0]))
                if new in ALLOWED_TRANSITIONS[old]:
                    store.put(
                        make_run(tenant, ENV, job_id, status=new.value, submitted_at=T[0], message="moved")
                    )
                    expected = new
                else:
                    with pytest.raises(InvalidArtifactError) as exc_info:
                        store.put(make_run(tenant, ENV, job_id, status=new.value, submitted_at=T[0]))
                    assert_invalid(exc_info, "status")
                    expected = old
                got = store.get(tenant, ENV, job_id)
                assert got is not None
                assert got.status == expected, f"{old.value} -> {new.value}"

    def test_succeeded_to_running_is_refused(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        done = make_run(tenant, ENV, "r1", status="succeeded", submitted_at=T[0])
        etag = store.put(done)
        with pytest.raises(InvalidArtifactError):
            store.put(replace_fields(done, status="running"))
        with pytest.raises(InvalidArtifactError):
            store.put(replace_fields(done, status="running"), if_match=etag)
        entry = store.get_entry(tenant, ENV, "r1")
        assert entry is not None
        assert (entry.artifact, entry.etag) == (done, etag)

    def test_put_many(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        runs = [make_run(tenant, ENV, f"bulk-{i}", status="running", submitted_at=T[i]) for i in range(5)]
        etags = store.put_many(runs)
        assert len(etags) == 5
        for run, etag in zip(runs, etags, strict=True):
            entry = store.get_entry(tenant, ENV, run.job_id)
            assert entry is not None
            assert (entry.artifact, entry.etag) == (run, etag)
        assert store.put_many(runs) == etags, "identical runs are no-ops"
        finished = [replace_fields(r, status="succeeded") for r in runs]
        store.put_many(finished)
        with pytest.raises(InvalidArtifactError):
            store.put_many([replace_fields(finished[0], status="running")])
        assert [r.status for r in store.list(tenant, ENV)] == [JobRunStatus.SUCCEEDED] * 5

    # -- filters --------------------------------------------------------------------------------
    def test_run_filters(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        store.put_many(
            [
                make_run(
                    tenant, ENV, "r1", job_type="validation", status="succeeded", submitted_at=T[0],
                    job_definition_id="jd-a", dataset_type="Billing", dagster_run_id="dr-1",
                    asset_key="billing/invoices", partition_key="2024-05-01",
                ),
                make_run(
                    tenant, ENV, "r2", job_type="cleansing", status="failed", submitted_at=T[1],
                    job_definition_id="jd-a", dataset_type="billing", dagster_run_id="dr-1",
                    asset_key="billing/invoices", partition_key="2024-05-02",
                ),
                make_run(
                    tenant, ENV, "r3", job_type="profiling", status="running", started_at=T[2],
                    job_definition_id="jd-b", dataset_type="orders", dagster_run_id="dr-2", asset_key="orders",
                ),
                make_run(tenant, ENV, "r4", job_type="validation", status="warning", completed_at=T[3]),
                # Values that a LIKE or prefix match would confuse with r1's.
                make_run(
                    tenant, ENV, "r5", job_type="validation", status="succeeded", submitted_at=T[4],
                    job_definition_id="jd-ab", dataset_type="billingX", dagster_run_id="dr-10",
                    asset_key="billing/invoicesX", partition_key="2024-05-01",
                ),
            ]
        )  # fmt: skip

        def ids(**filters: Any) -> list[str]:
            return _job_ids(store.list(tenant, ENV, **filters))

        assert ids() == ["r5", "r4", "r3", "r2", "r1"]
        assert ids(job_type="validation") == ["r5", "r4", "r1"]
        assert ids(job_type=JobType.CLEANSING) == ["r2"]
        assert ids(status="succeeded") == ["r5", "r1"]
        assert ids(status=JobRunStatus.RUNNING) == ["r3"]
        assert ids(job_definition_id="jd-a") == ["r2", "r1"]
        assert ids(dataset_type="BILLING") == ["r2", "r1"]
        assert ids(dataset_type="billing_") == []
        assert ids(dagster_run_id="dr-1") == ["r2", "r1"]
        assert ids(asset_key="billing/invoices") == ["r2", "r1"]
        assert ids(partition_key="2024-05-01") == ["r5", "r1"]
        assert ids(asset_key="billing/invoices", partition_key="2024-05-01") == ["r1"]
        assert ids(since=T[1]) == ["r5", "r4", "r3", "r2"]
        assert ids(until=T[3]) == ["r3", "r2", "r1"]
        assert ids(since=T[1], until=T[3]) == ["r3", "r2"]
        assert ids(since=T[2].astimezone(timezone(timedelta(hours=-5)))) == ["r5", "r4", "r3"]
        assert ids(since=T[2].replace(tzinfo=None)) == ["r5", "r4", "r3"]
        assert ids(since=T[1] + timedelta(microseconds=1)) == ["r5", "r4", "r3"]
        assert ids(until=T[1] + timedelta(microseconds=1)) == ["r2", "r1"]
        assert ids(since=T[9]) == []
        assert ids(job_type="validation", status="succeeded", since=T[1]) == ["r5"]
        assert ids(job_type="profiling", dataset_type="billing") == []

    @pytest.mark.parametrize(
        ("filters", "field"),
        [
            ({"job_type": "quality"}, "job_type"),
            ({"status": "done"}, "status"),
            ({"job_definition_id": "../x"}, "job_definition_id"),
            ({"dataset_type": ""}, "dataset_type"),
            ({"asset_key": ""}, "asset_key"),
            ({"dagster_run_id": 5}, "dagster_run_id"),
            ({"since": "2024-05-01"}, "since"),
            ({"until": 1714564800}, "until"),
            ({"limit": 0}, "limit"),
            ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
            ({"limit": True}, "limit"),
            ({"cursor": "not a cursor!"}, "cursor"),
            ({"cursor": ""}, "cursor"),
            ({"cursor": encode_cursor(["x", "y"])}, "cursor"),
        ],
    )
    def test_bad_run_list_arguments_are_refused(
        self, stores: Stores, tenant: str, filters: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidArtifactError) as exc_info:
            stores.job_runs.list(tenant, ENV, **filters)
        assert_invalid(exc_info, field)

    @pytest.mark.parametrize(
        "values",
        [
            [1, 2, 3],
            [None, None, None],
            ["yesterday", "r1", ENV],
            ["2024-05-01T12:00:00.000000Z", ["r1"], ENV],
            ["2024-05-01T12:00:00.000000Z", "r1", {"e": 1}],
        ],
        ids=["ints", "nulls", "bad-time", "bad-id", "bad-env"],
    )
    def test_forged_run_cursor_is_refused(self, stores: Stores, tenant: str, values: list[Any]) -> None:
        stores.job_runs.put(make_run(tenant, ENV, "r1", submitted_at=T[0]))
        with pytest.raises(InvalidArtifactError) as exc_info:
            stores.job_runs.list(tenant, ENV, cursor=encode_cursor(values))
        assert_invalid(exc_info, "cursor")

    # -- order and pagination -------------------------------------------------------------------
    def test_runs_are_newest_first_by_first_present_time(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        store.put(make_run(tenant, ENV, "submitted", submitted_at=T[1], started_at=T[5], completed_at=T[6]))
        store.put(make_run(tenant, ENV, "started", started_at=T[2], completed_at=T[7]))
        store.put(make_run(tenant, ENV, "completed", completed_at=T[3]))
        store.put(make_run(tenant, ENV, "oldest", submitted_at=T[0]))
        assert _job_ids(store.list(tenant, ENV)) == ["completed", "started", "submitted", "oldest"]
        # Changing the time a run sorts by moves it.
        store.put(make_run(tenant, ENV, "oldest", submitted_at=T[4]))
        assert _job_ids(store.list(tenant, ENV)) == ["oldest", "completed", "started", "submitted"]

    def test_run_without_times_sorts_by_first_recording(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        store.put(make_run(tenant, ENV, "dated", submitted_at=T[0]))
        before = datetime.now(UTC) - timedelta(seconds=5)
        store.put(make_run(tenant, ENV, "first", status="pending"))
        time.sleep(0.01)
        store.put(make_run(tenant, ENV, "second", status="pending"))
        time.sleep(0.01)
        # An update keeps the time the store first recorded the run.
        store.put(make_run(tenant, ENV, "first", status="running"))
        assert _job_ids(store.list(tenant, ENV)) == ["second", "first", "dated"]
        assert _job_ids(store.list(tenant, ENV, since=before)) == ["second", "first"]
        assert _job_ids(store.list(tenant, ENV, until=before)) == ["dated"]

    def test_run_pagination_with_ties(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        tie = T[5]
        tied_ids = ["tie-a", "tie-B", "tie-b", "tie-1", "tie-_", "tie-.x", "tie--", "tie-0a", "tie-z"]
        runs = [
            make_run(tenant, ENV, job_id, status="succeeded" if i % 2 else "failed", submitted_at=tie)
            for i, job_id in enumerate(tied_ids)
        ]
        near = [tie - timedelta(microseconds=1), tie + timedelta(microseconds=1), tie + timedelta(seconds=1)]
        runs += [
            make_run(tenant, ENV, f"near-{i}", status="succeeded", submitted_at=t) for i, t in enumerate(near)
        ]
        runs += [
            make_run(
                tenant, ENV, f"spread-{i:02d}", status="failed" if i % 3 else "succeeded", submitted_at=T[i]
            )
            for i in range(10)
        ]
        store.put_many(runs)
        expected = _newest_first(runs)
        assert len(expected) == len(set(expected)) == 22

        for limit in (1, 4, 9, 22, 100):
            items, pages = collect_pages(pager(store, tenant, ENV, limit), limit=limit)
            assert _job_ids(items) == expected, f"limit={limit}"
            assert pages == -(-22 // limit)
        succeeded = [r for r in runs if r.status == JobRunStatus.SUCCEEDED]
        items, _ = collect_pages(pager(store, tenant, ENV, 3, status="succeeded"), limit=3)
        assert _job_ids(items) == _newest_first(succeeded)

    def test_list_by_tenant(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        runs = [
            make_run(tenant, "dev", "a1", submitted_at=T[0]),
            make_run(tenant, "dev", "a2", submitted_at=T[2]),
            make_run(tenant, "dev", "same", submitted_at=T[5]),
            make_run(tenant, "prod", "b1", submitted_at=T[1]),
            make_run(tenant, "prod", "b2", submitted_at=T[3]),
            make_run(tenant, "prod", "same", submitted_at=T[5]),
            make_run(tenant, "dev-x", "c", submitted_at=T[4]),
        ]
        store.put_many(runs)
        store.put(make_run(tenant + "-other", "dev", "z", submitted_at=T[6]))

        every = [(r.job_id, r.environment) for r in store.list_by_tenant(tenant)]
        assert every == [
            ("same", "prod"),
            ("same", "dev"),
            ("c", "dev-x"),
            ("b2", "prod"),
            ("a2", "dev"),
            ("b1", "prod"),
            ("a1", "dev"),
        ]
        assert every == [(r.job_id, r.environment) for r in store.list_by_tenant(tenant, None)]
        assert _job_ids(store.list_by_tenant(tenant, "dev")) == ["same", "a2", "a1"]
        assert _job_ids(store.list_by_tenant(tenant, "prod")) == ["same", "b2", "b1"]
        assert _job_ids(store.list_by_tenant(tenant, "dev-")) == []
        assert list(store.list_by_tenant(tenant + "x")) == []

    def test_list_by_tenant_pages_across_environments(self, stores: Stores, tenant: str) -> None:
        # list_by_tenant pages 500 runs at a time; the backend primitive it pages with is driven
        # here with tiny pages so that every page boundary (ties included) is exercised cheaply.
        store: JobRunStore = stores.job_runs
        # Ties on run time, and on (run time, job id) across environments.
        runs = [
            make_run(tenant, env, f"r{n}", submitted_at=T[n % 2])
            for env in ("dev", "prod", "qa")
            for n in range(4)
        ]
        store.put_many(runs)
        expected = [(r.job_id, r.environment) for r in sorted(
            runs, key=lambda r: (r.sort_time, r.job_id, r.environment), reverse=True
        )]  # fmt: skip
        for limit in (1, 2, 5):
            seen: list[tuple[str, str]] = []
            after: list[Any] | None = None
            while True:
                docs, next_cursor = store._list_runs(tenant, None, limit, after, RunFilters())
                assert len(docs) <= limit
                seen += [(r.job_id, r.environment) for r in (JobRun.model_validate_json(d) for d in docs)]
                if next_cursor is None:
                    break
                assert len(docs) == limit
                after = decode_cursor(next_cursor, 3)
            assert seen == expected, f"limit={limit}"
        assert [(r.job_id, r.environment) for r in store.list_by_tenant(tenant)] == expected

    # -- delete and bad input -------------------------------------------------------------------
    def test_run_delete(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        run = make_run(tenant, ENV, "r1", status="running", submitted_at=T[0])
        stale = store.put(run)
        current = store.put(replace_fields(run, status="succeeded"))
        store.put(make_run(tenant, ENV, "r2", submitted_at=T[1]))
        with pytest.raises(ConflictError):
            store.delete(tenant, ENV, "r1", if_match=stale)
        assert store.get(tenant, ENV, "r1") is not None
        assert store.delete(tenant, ENV, "r1", if_match=current) is True
        assert store.get(tenant, ENV, "r1") is None
        assert store.delete(tenant, ENV, "r1") is False
        assert store.delete(tenant, ENV, "r2") is True
        assert list(store.list_by_tenant(tenant)) == []
        # A deleted run's id is free: a new run may start from any status.
        store.put(make_run(tenant, ENV, "r1", status="pending"), create_only=True)

    def test_runs_are_not_versioned(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        store.put(make_run(tenant, ENV, "r1", submitted_at=T[0]))
        with pytest.raises(InvalidArtifactError) as exc_info:
            store.get(tenant, ENV, "r1", "1.0.0")
        assert_invalid(exc_info, "version")
        with pytest.raises(InvalidArtifactError):
            store.delete(tenant, ENV, "r1", "1.0.0")
        assert store.get(tenant, ENV, "r1") is not None

    @pytest.mark.parametrize(
        ("path", "field"),
        [
            ((), "bogus_field"),
            (("summary",), "summary.bogus_field"),
            (("orchestrator",), "orchestrator.bogus_field"),
            (("actions", 0), "actions.0.bogus_field"),
            (("result",), "result.bogus_field"),
        ],
    )
    def test_run_unknown_fields_are_refused(
        self, stores: Stores, tenant: str, path: tuple[Any, ...], field: str
    ) -> None:
        document = load_fixture("job_runs", tenant=tenant, environment=ENV)
        target: Any = document
        for part in path:
            target = target[part]
        target["bogus_field"] = "x"
        with pytest.raises(InvalidArtifactError) as exc_info:
            stores.job_runs.put(document)
        assert exc_info.value.field == field
        assert field in str(exc_info.value)
        assert list(stores.job_runs.list_by_tenant(tenant)) == []

    def test_run_nan_is_refused(self, stores: Stores, tenant: str) -> None:
        bad_runs: list[dict[str, Any]] = [
            {"summary": {"pass_rate": float("nan")}},
            {"summary": {"metrics": {"x": float("inf")}}},
            {"metadata": {"x": float("nan")}},
        ]
        for extra in bad_runs:
            document = make_run(tenant, ENV, "r1").model_dump(mode="json", exclude_unset=True)
            document.update(extra)
            with pytest.raises(InvalidArtifactError):
                stores.job_runs.put(document)
        assert stores.job_runs.get(tenant, ENV, "r1") is None
