"""Shared helpers of the concurrency, crash and hostile-input tests in this folder.

What lives here: ``Location`` (where one backend's data lives, as a URL plus options a child
process can pickle and reopen), the ``location`` fixture parametrised over the backends (each with
its service marker, so ``-m postgres`` / ``-m azurite`` select them), the multiprocessing context
(forkserver, so children start fast and never inherit the test process's threads or connections),
the functions child processes run (read-modify-write, create-only race, the crash writer) and
``WriteLog``, which tells from the crash writer's log which writes were acknowledged. Workers live
in this module because spawn / forkserver children import their target by module name. What must
not: test functions, or the database-outage helpers of the other reliability files.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pytest

from dq_stores.base import JobRunStore
from dq_stores.errors import ConflictError
from dq_stores.registry import Stores, open_stores
from tests.plugins.azurite import Azurite, AzuriteUnavailable, start_azurite
from tests.plugins.postgres import require_service

ENV = "prod"

BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("filesystem", id="filesystem"),
    pytest.param("blob", marks=pytest.mark.azurite, id="blob"),
]
"""The four persistent backends (memory is per process, so it has no cross-process story)."""

_PRELOAD = [
    "dq_stores.registry",
    "dq_stores.sql.backend",
    "dq_stores.filesystem",
    "dq_stores.blob",
    "tests.reliability.conftest",
]


@dataclass(frozen=True)
class Location:
    """Where one backend's data lives: picklable, so a child process opens the same stores."""

    backend: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    root: str | None = None
    """The folder that holds everything of a file-based backend (for tree checks)."""
    backoff: tuple[float, float] = (0.001, 0.05)
    """(first, longest) backoff of a client retrying after ``ConflictError``, in seconds: a local
    store commits in about a millisecond, a remote one (Blob) in tens of milliseconds."""

    def open(self, **extra: Any) -> Stores:
        return open_stores(self.url, **{**self.options, **extra})


def make_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh, empty location of ``backend`` (services come from the tests/plugins fixtures)."""
    if backend == "memory":
        folder = tmp_path / "memory-results"
        return Location("memory", "memory://", {"results_url": folder.as_uri()}, root=str(folder))
    if backend == "sqlite":
        folder = tmp_path / "sqlite"
        return Location("sqlite", f"sqlite:///{folder}/dq.db", root=str(folder))
    if backend == "filesystem":
        folder = tmp_path / "fs"
        return Location("filesystem", f"file://{folder}", root=str(folder))
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("make_pg_schema")()
        folder = tmp_path / "pg-results"
        return Location("postgres", url, {"schema": schema, "results_url": folder.as_uri()}, root=str(folder))
    if backend == "blob":
        container = request.getfixturevalue("blob_container")
        return Location(
            "blob",
            container.url("dq"),
            {"connection_string": container.connection_string},
            backoff=(0.01, 0.5),
        )
    raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture(scope="package")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A fresh Azurite for the reliability tests (overrides the session's): 16 writer processes,
    crash loops and hostile names hammer it, and an emulator that has held everything the rest of
    the suite wrote answers them slower (seen: 60 s read timeouts under load)."""
    try:
        instance = start_azurite(tmp_path_factory.mktemp("azurite-reliability"))
    except AzuriteUnavailable as exc:
        require_service("Azurite", str(exc))
        raise  # unreachable: require_service fails or skips
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(params=BACKEND_PARAMS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """An empty location on each persistent backend in turn."""
    return make_location(request.param, request, tmp_path)


def mp_context() -> ForkServerContext:
    """Forkserver: children are forked from a clean server that has the stores preloaded (fast
    to start, no inherited threads, pools or sockets of the test process)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


# -- workers (run in child processes) ------------------------------------------------------------


def increment_run(
    store: JobRunStore,
    tenant: str,
    environment: str,
    job_id: str,
    times: int,
    rng: random.Random,
    backoff: tuple[float, float] = (0.001, 0.05),
) -> int:
    """Add 1 to the run's ``metadata["count"]`` ``times`` times, read-modify-write with
    ``if_match``; on ``ConflictError`` re-read and retry after an exponential backoff with full
    jitter (what a real client does: it keeps 16 writers from retrying in lock-step). Returns the
    conflicts seen."""
    conflicts = 0
    for _ in range(times):
        attempt = 0
        while True:
            entry = store.get_entry(tenant, environment, job_id)
            if entry is None:
                raise AssertionError(f"run {job_id} vanished")
            metadata = dict(entry.artifact.metadata)
            metadata["count"] = int(metadata.get("count", 0)) + 1
            try:
                store.put(entry.artifact.model_copy(update={"metadata": metadata}), if_match=entry.etag)
            except ConflictError:
                conflicts += 1
                attempt += 1
                time.sleep(rng.uniform(0, min(backoff[1], backoff[0] * 2**attempt)))
                continue
            break
    return conflicts


def rmw_worker(
    location: Location,
    tenant: str,
    job_id: str,
    times: int,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """Child: open the stores, wait for every sibling, increment, report (or the error)."""
    try:
        with location.open() as stores:
            barrier.wait(120)
            started = time.perf_counter()
            conflicts = increment_run(
                stores.job_runs, tenant, ENV, job_id, times, random.Random(seed), location.backoff
            )
            results.put(("ok", conflicts, time.perf_counter() - started))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        results.put(("error", f"{type(exc).__name__}: {exc}", 0.0))


def create_worker(
    location: Location, document: dict[str, Any], barrier: Any, results: Any, rounds: int
) -> None:
    """Child: for each round, wait for the rival, then create the contract version create-only."""
    from dq_stores.errors import StoreError

    writer = document["metadata"]["writer"]
    try:
        with location.open() as stores:
            for n in range(rounds):
                doc = {**document, "version": f"1.0.{n}"}
                doc["datasets"] = [{**d, "version": doc["version"]} for d in document["datasets"]]
                barrier.wait(120)
                try:
                    etag = stores.contracts.put(doc, create_only=True)
                    results.put((n, "won", etag, writer))
                except ConflictError:
                    results.put((n, "conflict", None, writer))
                except StoreError as exc:
                    results.put((n, "error", f"{type(exc).__name__}: {exc}", writer))
    except BaseException as exc:
        results.put((-1, "error", f"{type(exc).__name__}: {exc}", writer))


def open_worker(location: Location, barrier: Any, results: Any) -> None:
    """Child: wait for every sibling, then open the stores and read (a fresh store is created)."""
    try:
        barrier.wait(60)
        with location.open() as stores:
            stores.contracts.list("t", ENV)
        results.put("ok")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def run_children(
    ctx: ForkServerContext, target: Callable[..., None], args_list: list[tuple[Any, ...]], timeout: float
) -> None:
    """Start one child per ``args`` tuple, wait for all (killing stragglers), check exit codes."""
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for proc in alive:
        proc.kill()
        proc.join(5)
    assert not alive, f"{len(alive)} child process(es) still running after {timeout:.0f} s"
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    assert not failed, f"child process(es) exited with {failed}"


def drain(queue: Any, count: int, timeout: float) -> list[Any]:
    """``count`` items from a multiprocessing queue (fails the test if they do not arrive)."""
    import queue as queue_module

    items = []
    deadline = time.monotonic() + timeout
    for _ in range(count):
        try:
            items.append(queue.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue_module.Empty:
            pytest.fail(f"only {len(items)} of {count} results arrived from the child processes")
    return items


def tree_files(root: str | os.PathLike[str]) -> list[str]:
    """Every file and folder below ``root`` (relative paths), for 'nothing outside' checks."""
    out = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(out)


# -- the crash writer ----------------------------------------------------------------------------

CRASH_CONTRACTS = ("c0", "c1", "c2")
CRASH_RUNS = ("r0", "r1", "r2", "r3")
CRASH_PAD = 20_000
"""Bytes of padding in each crash-test contract, so a write takes more than one syscall."""


def crash_contract(tenant: str, contract_id: str, gen: int) -> Any:
    """The contract a crash writer puts at generation ``gen``: a pure function of its arguments,
    so a check can rebuild exactly what any acknowledged or in-flight write held."""
    from dq_stores.testing.builders import make_contract

    pad = (f"{contract_id}:{gen}:" * (CRASH_PAD // 8))[:CRASH_PAD]
    return make_contract(tenant, ENV, contract_id, "1.0.0", metadata={"gen": gen, "pad": pad})


def crash_payload(job_id: str, gen: int, size: int) -> bytes:
    """A result of ``size`` bytes whose header says which (run, generation, size) it is."""
    import hashlib

    header = f"{job_id}:{gen}:{size}:".encode().ljust(64, b"#")
    block = hashlib.sha256(header).digest() * 2048  # 64 KiB
    body = header + block * (size // len(block) + 1)
    return body[:size]


def parse_payload_header(data: bytes) -> tuple[str, int, int]:
    job_id, gen, size, _ = data[:64].decode().split(":", 3)
    return job_id, int(gen), int(size)


def crash_writer(location: Location, tenant: str, seed: int, ready: Any, log_path: str) -> None:
    """Child: put contracts, runs and large results (offloaded; streamed or bytes) until killed.

    Each write is logged to ``log_path`` before it starts (``A``) and once it returned (``K``,
    acknowledged), one ``os.write`` per line on an ``O_APPEND`` file: a line in the kernel survives
    SIGKILL, so the parent knows exactly which writes were acknowledged and which one was in flight.
    """
    from dq_stores.testing.builders import make_run

    rng = random.Random(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def logged(op: str, key: str, gen: int, write: Callable[[], object]) -> None:
        os.write(log, f"A {op} {key} {gen}\n".encode())
        write()
        os.write(log, f"K {op} {key} {gen}\n".encode())

    with location.open() as stores:
        ready.set()
        gen = seed * 1_000_000
        while True:
            gen += 1
            if rng.random() < 0.4:
                cid = rng.choice(CRASH_CONTRACTS)
                document = crash_contract(tenant, cid, gen)
                logged("contract", cid, gen, lambda: stores.contracts.put(document))  # noqa: B023
                continue
            job_id = rng.choice(CRASH_RUNS)
            entry = stores.job_runs.get_entry(tenant, ENV, job_id)
            if entry is None or rng.random() < 0.5:
                # A fresh record (drops the old result reference: its payload becomes an orphan).
                fresh = make_run(tenant, ENV, job_id, status="running", metadata={"gen": gen})
                logged("fresh", job_id, gen, lambda: stores.job_runs.put(fresh))  # noqa: B023
            else:
                # Read-modify-write that keeps the result reference.
                run = entry.artifact.model_copy(update={"metadata": {"gen": gen}})
                etag = entry.etag
                logged("rmw", job_id, gen, lambda: stores.job_runs.put(run, if_match=etag))  # noqa: B023
            data = crash_payload(job_id, gen, rng.choice((70_000, 600_000, 2_500_000)))
            result: Any = data
            if rng.random() < 0.5:
                result = (data[i : i + 256_000] for i in range(0, len(data), 256_000))
            logged(
                "result",
                job_id,
                gen,
                lambda: stores.job_runs.put_result(
                    tenant,
                    ENV,
                    job_id,  # noqa: B023
                    result,  # noqa: B023
                    content_type="application/octet-stream",
                    offload=True,
                ),
            )


@dataclass
class WriteLog:
    """The crash writers' log, parsed: per (op family, key) the writes in order, each with
    whether it was acknowledged. A write never acknowledged may or may not have happened."""

    events: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> WriteLog:
        log = cls()
        pending: dict[tuple[str, str, int], int] = {}
        text = Path(path).read_text() if os.path.exists(path) else ""
        lines = text.split("\n")[:-1]  # a line cut by the kill has no newline yet: not written
        for line in lines:
            mark, op, key, gen_text = line.split()
            gen = int(gen_text)
            family = "contract:" + key if op == "contract" else "run:" + key
            events = log.events.setdefault(family, [])
            if mark == "A":
                pending[(op, key, gen)] = len(events)
                events.append((op, gen, False))
            else:
                events[pending.pop((op, key, gen))] = (op, gen, True)
        return log

    def candidates(
        self, family: str, affects: Callable[[str], bool], value: Callable[[str, int], Any]
    ) -> set[Any]:
        """Every state the writes of ``family`` that ``affects`` the field can have left: walk back
        from the newest write; an acknowledged one settles it, an unacknowledged one may or may
        not have happened. ``None`` when no write may have happened at all."""
        found: set[Any] = set()
        for op, gen, acked in reversed(self.events.get(family, [])):
            if not affects(op):
                continue
            found.add(value(op, gen))
            if acked:
                return found
        found.add(None)
        return found

    def history_allowed(self, family: str, gens: list[int]) -> bool:
        """``gens`` (revisions, oldest first) holds every acknowledged write in order, plus only
        unacknowledged ones that were really attempted, in their places."""
        remaining = list(gens)
        for _op, gen, acked in self.events.get(family, []):
            if remaining and remaining[0] == gen:
                remaining.pop(0)
            elif acked:
                return False
        return not remaining
