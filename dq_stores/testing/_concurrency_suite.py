"""Conformance tests of optimistic concurrency under real contention: threads sharing one
``Stores``, and (when the backend declares ``supports_cross_process_concurrency`` and the suite
subclass says how to reopen the same data) separate processes. No acknowledged write may be lost,
and ``if_match`` / ``create_only`` must hold. This module holds tests only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dq_stores.errors import ConflictError
from dq_stores.stores import Stores
from dq_stores.testing._cases import VersionedCase, require_capability
from dq_stores.testing._concurrency import increment
from dq_stores.testing.builders import BASE_TIME, make_contract, make_run

R = TypeVar("R")
ENV = "dev"
THREADS = 4
INCREMENTS = 6


def _in_threads(count: int, task: Callable[[int], R]) -> list[R | BaseException]:
    """Run ``task(i)`` in ``count`` threads released together; results or raised exceptions."""
    barrier = threading.Barrier(count)

    def start(i: int) -> R:
        barrier.wait(timeout=30)
        return task(i)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start, i) for i in range(count)]
        outcomes: list[R | BaseException] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=120))
            except Exception as exc:  # collected: the test decides which errors are allowed
                outcomes.append(exc)
        return outcomes


def _unexpected(outcomes: list[Any], allowed: type[BaseException] | None = None) -> list[BaseException]:
    return [o for o in outcomes if isinstance(o, BaseException) and not (allowed and isinstance(o, allowed))]


@pytest.mark.reliability
class ConcurrencyTests:
    def test_threads_read_modify_write_with_if_match(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        store.put(versioned.make(tenant, ENV, "counter", metadata={"count": 0}))
        outcomes = _in_threads(
            THREADS, lambda _: increment(store, tenant, ENV, "counter", "1.0.0", INCREMENTS)
        )
        assert not _unexpected(outcomes), _unexpected(outcomes)
        final = store.require(tenant, ENV, "counter", "1.0.0")
        assert final.metadata["count"] == THREADS * INCREMENTS, "an if_match write was lost"
        if store.supports_history:
            assert len(store.history(tenant, ENV, "counter", "1.0.0")) == 1 + THREADS * INCREMENTS

    def test_threads_read_modify_write_job_run(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        store.put(
            make_run(tenant, ENV, "counter", status="running", submitted_at=BASE_TIME, metadata={"count": 0})
        )
        outcomes = _in_threads(THREADS, lambda _: increment(store, tenant, ENV, "counter", None, INCREMENTS))
        assert not _unexpected(outcomes), _unexpected(outcomes)
        final = store.get(tenant, ENV, "counter")
        assert final is not None
        assert final.metadata["count"] == THREADS * INCREMENTS, "an if_match write was lost"

    def test_create_only_race_has_one_winner(self, versioned: VersionedCase, tenant: str) -> None:
        store = versioned.store
        outcomes = _in_threads(
            THREADS * 2,
            lambda i: store.put(
                versioned.make(tenant, ENV, "race", metadata={"writer": i}), create_only=True
            ),
        )
        assert not _unexpected(outcomes, ConflictError), _unexpected(outcomes, ConflictError)
        winners = [i for i, o in enumerate(outcomes) if isinstance(o, str)]
        assert len(winners) == 1, f"{len(winners)} create_only writers won"
        entry = store.get_entry(tenant, ENV, "race", "1.0.0")
        assert entry is not None
        assert entry.artifact.metadata["writer"] == winners[0]
        assert entry.etag == outcomes[winners[0]]
        if store.supports_history:
            assert len(store.history(tenant, ENV, "race", "1.0.0")) == 1

    def test_create_only_race_job_run(self, stores: Stores, tenant: str) -> None:
        store = stores.job_runs
        outcomes = _in_threads(
            THREADS * 2,
            lambda i: store.put(
                make_run(tenant, ENV, "race", status="pending", metadata={"writer": i}), create_only=True
            ),
        )
        assert not _unexpected(outcomes, ConflictError), _unexpected(outcomes, ConflictError)
        winners = [i for i, o in enumerate(outcomes) if isinstance(o, str)]
        assert len(winners) == 1, f"{len(winners)} create_only writers won"
        run = stores.job_runs.get(tenant, ENV, "race")
        assert run is not None
        assert run.metadata["writer"] == winners[0]

    def test_concurrent_unconditional_puts_lose_no_revision(
        self, versioned: VersionedCase, tenant: str
    ) -> None:
        # Plain puts racing on one key (first insert included): each acknowledged write is a
        # revision; identical racing puts make exactly one.
        store = versioned.store
        same = versioned.make(tenant, ENV, "same")
        outcomes = _in_threads(THREADS, lambda _: store.put(same))
        assert not _unexpected(outcomes, ConflictError), _unexpected(outcomes, ConflictError)
        assert len({o for o in outcomes if isinstance(o, str)}) == 1
        outcomes = _in_threads(
            THREADS, lambda i: store.put(versioned.make(tenant, ENV, "many", metadata={"writer": i}))
        )
        assert not _unexpected(outcomes, ConflictError), _unexpected(outcomes, ConflictError)
        acknowledged = [o for o in outcomes if isinstance(o, str)]
        assert acknowledged, "every writer lost"
        if store.supports_history:
            assert len(store.history(tenant, ENV, "same", "1.0.0")) == 1
            etags = [r.etag for r in store.history(tenant, ENV, "many", "1.0.0")]
            assert sorted(etags) == sorted(acknowledged), "an acknowledged write is missing from history"

    @pytest.mark.slow
    def test_processes_read_modify_write_with_if_match(
        self,
        stores: Stores,
        stores_location: tuple[str, dict[str, Any]] | None,
        tenant: str,
        tmp_path: Path,
    ) -> None:
        require_capability(stores.contracts, "supports_cross_process_concurrency")
        if stores_location is None:
            pytest.skip(
                "the suite subclass gives no `stores_location` to reopen its stores in another process"
            )
        url, options = stores_location
        stores.contracts.put(make_contract(tenant, ENV, "counter", metadata={"count": 0}))
        go_file = tmp_path / "go"
        spec = {
            "url": url,
            "options": options,
            "kind": "contracts",
            "tenant": tenant,
            "environment": ENV,
            "artifact_id": "counter",
            "version": "1.0.0",
            "times": 10,
            "go_file": str(go_file),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "dq_stores.testing._concurrency", json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = worker.stdout.readline().strip()
                if line != "ready":
                    _, err = worker.communicate(timeout=30)
                    pytest.fail(f"worker did not start: {line!r} {err[-2000:]}")
            go_file.touch()
            for worker in workers:
                out, err = worker.communicate(timeout=120)
                assert worker.returncode == 0, err[-2000:]
                json.loads(out.strip().splitlines()[-1])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        final = stores.contracts.require(tenant, ENV, "counter", "1.0.0")
        assert final.metadata["count"] == 20, "an if_match write was lost between processes"
        if stores.contracts.supports_history:
            assert len(stores.contracts.history(tenant, ENV, "counter", "1.0.0")) == 21
