"""The filesystem backend beyond the conformance suite: layout, atomicity under injected failures
and real crashes, cross-process ``if_match``, path confinement, index rebuild, and listings that
give exactly the SQL backend's answers."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dq_stores.canonical import canonical_json
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
)
from dq_stores.filesystem import (
    FilesystemContractStore,
    FilesystemJobRunStore,
    open_filesystem_stores,
    root_from_url,
)
from dq_stores.filesystem.journal import JOURNAL_FILE
from dq_stores.fsio import BOOT_ID, CACHED, CLEAN, DIRTY, SafeRoot, ScopeLock
from dq_stores.models import DataContract, JobRun
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.testing import (
    BASE_TIME,
    load_fixture,
    make_action_profile,
    make_contract,
    make_job_definition,
    make_run,
    replace_fields,
)

T, ENV = "acme", "dev"
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A fresh store folder, on tmpfs when there is one: these tests write a lot and fsync cost
    says nothing about correctness (the step-by-step crash test uses ``disk_root``)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "store"
        return
    folder = Path(tempfile.mkdtemp(prefix="dq-fs-test-", dir=shm))
    try:
        yield folder / "store"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def disk_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def stores(root: Path) -> Iterator[Stores]:
    with open_filesystem_stores(f"file://{root}") as s:
        yield s


def with_count(model: Any, count: int) -> Any:
    return replace_fields(model, metadata={**model.metadata, "count": count})


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (folders that hold no file are not listed), but
    the journals: a write empties them into durable files first, which changes no state (their
    own undo is tested on its own).
    """
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != JOURNAL_FILE
    }


def garbage(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".*") if p.name.endswith((".tmp", ".deleted"))]


def dirty_locks(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".lock") if p.read_bytes()[:1] == DIRTY]


# -- layout and URLs ----------------------------------------------------------------------------


def test_layout_is_as_documented(stores: Stores, root: Path) -> None:
    contract = make_contract(T, ENV, "c1", "1.0.0")
    stores.contracts.put(contract)
    changed = with_count(contract, 1)
    stores.contracts.put(changed)
    definition = make_job_definition(T, ENV, "j1", "2.0.0")
    stores.job_definitions.put(definition)
    profile = make_action_profile(T, ENV, "p1", "0.1.0")
    stores.action_profiles.put(profile)
    run = make_run(T, "prod", "r1", submitted_at=BASE_TIME)
    stores.job_runs.put(run)

    files = snapshot(root)
    artifacts = {k: v for k, v in files.items() if not Path(k).name.startswith(".") and ".history" not in k}
    assert artifacts == {
        "acme/dev/contracts/c1/1.0.0.json": canonical_json(changed),
        "acme/dev/job_definitions/j1/2.0.0.json": canonical_json(definition),
        "acme/dev/action_profiles/p1/0.1.0.json": canonical_json(profile),
        "acme/prod/job_runs/r1.json": canonical_json(run),
    }
    history = {k: v for k, v in files.items() if ".history" in k}
    assert history == {
        "acme/dev/contracts/c1/.history/1.0.0/1.json": canonical_json(contract),
        "acme/dev/contracts/c1/.history/1.0.0/2.json": canonical_json(changed),
        "acme/dev/job_definitions/j1/.history/2.0.0/1.json": canonical_json(definition),
        "acme/dev/action_profiles/p1/.history/0.1.0/1.json": canonical_json(profile),
    }
    own = sorted(k for k in files if Path(k).name.startswith("."))
    folders = [
        "acme/dev/action_profiles",
        "acme/dev/contracts",
        "acme/dev/job_definitions",
        "acme/prod/job_runs",
    ]
    assert own == sorted(f"{f}/{name}" for f in folders for name in (".index.json", ".lock"))
    # The journal of single puts exists where the lock marker can tell a restart (Linux).
    assert all((root / f / JOURNAL_FILE).is_file() for f in folders) == (BOOT_ID is not None)
    # No writer inside: each marker is clean, or says the index is a cache of this boot.
    for f in folders:
        marker = files[f"{f}/.lock"]
        assert marker[:1] == CLEAN or (marker[:1] == CACHED and marker[1:37] == BOOT_ID), marker
    index = json.loads(files["acme/dev/contracts/.index.json"])
    assert (index["tenant"], index["environment"], index["kind"]) == (T, ENV, "contracts")
    [entry] = index["entries"]
    assert entry["revision"] == 2
    assert entry["content_hash"] == stores.contracts.get_entry(T, ENV, "c1", "1.0.0").content_hash  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["contracts", "job_definitions", "action_profiles", "job_runs"])
def test_canonical_fixtures_round_trip_byte_identically(stores: Stores, root: Path, kind: str) -> None:
    document = load_fixture(kind)
    store = getattr(stores, kind)
    store.put(document)
    model = store.kind.model.model_validate(document)
    stored = [p for p in root.rglob("*.json") if not p.name.startswith(".") and ".history" not in p.parts]
    assert [p.read_bytes() for p in stored] == [canonical_json(model)]
    artifact_id = model.artifact_id
    got = store.get(model.tenant_id, model.environment, artifact_id, getattr(model, "version", None))
    assert canonical_json(got) == canonical_json(model)


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert root_from_url("file:///abs/dq%20store") == "/abs/dq store"
    assert root_from_url("file://relative/path") == "relative/path"
    monkeypatch.chdir(tmp_path)
    with open_stores("file://rel/dq") as s:
        s.job_runs.put(make_run(T, ENV, "r1"))
        assert isinstance(s.job_runs, FilesystemJobRunStore)
    assert (tmp_path / "rel/dq/acme/dev/job_runs/r1.json").is_file()
    for bad in ("file://", "file:///x?fsync=0", "file:///x#frag", "sqlite:///x"):
        with pytest.raises(InvalidArtifactError):
            open_filesystem_stores(bad)
    with open_stores(f"file://{tmp_path}/a", results_url=f"file://{tmp_path}/results") as s:
        s.job_runs.put(make_run(T, ENV, "r2"))
        ref = s.job_runs.put_result(T, ENV, "r2", {"rows": 1})
        assert ref.uri is not None and ref.uri.startswith((tmp_path / "results").as_uri())
        assert s.job_runs.get_result(T, ENV, "r2") == b'{"rows":1}'
    with pytest.raises(InvalidArtifactError, match="results_url"):
        open_stores(f"file://{tmp_path}/a", results_url="ftp://elsewhere")
    with pytest.raises(InvalidArtifactError, match="bogus"):
        open_filesystem_stores(f"file://{tmp_path}/a", bogus=1)
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(InvalidArtifactError, match="not a folder"):
        open_filesystem_stores(f"file://{tmp_path}/plain-file")
    # Constructible from a root path too.
    store = FilesystemContractStore(tmp_path / "direct")
    store.put(make_contract(T, ENV, "c1"))
    assert store.get(T, ENV, "c1") is not None


# -- paths --------------------------------------------------------------------------------------

HOSTILE = [
    "..",
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "%2e%2e",
    "%2e%2e%2fx",
    "\uff0e\uff0e",
    "\u2024\u2024",
    "a" * 129,
    "a" * 10_000,
    "a\x00b",
    "a/b",
    "a\\..\\b",
    "",
    ".hidden",
    "a..b",
    "C:\\x",
]


@pytest.mark.reliability
def test_nothing_escapes_the_root(stores: Stores, root: Path) -> None:
    ok = "c1"
    calls: list[Callable[[str], Any]] = [
        lambda v: stores.contracts.get(v, ENV, ok),
        lambda v: stores.contracts.get(T, v, ok),
        lambda v: stores.contracts.get(T, ENV, v),
        lambda v: stores.contracts.get(T, ENV, ok, v),
        lambda v: stores.contracts.history(T, ENV, v, "1.0.0"),
        lambda v: stores.contracts.delete(T, ENV, v),
        lambda v: stores.contracts.list(v, ENV),
        lambda v: stores.contracts.get_latest_for_dataset(v, ENV, "orders"),
        lambda v: stores.contracts.put({**make_contract(T, ENV).model_dump(mode="json"), "contract_id": v}),
        lambda v: stores.job_runs.put({**make_run(T, ENV).model_dump(mode="json"), "job_id": v}),
        lambda v: stores.job_runs.get(T, ENV, v),
        lambda v: stores.job_runs.delete(T, v, ok),
        lambda v: list(stores.job_runs.list_by_tenant(v)),
        lambda v: list(stores.job_runs.list_by_tenant(T, v)),
    ]
    for value in HOSTILE:
        for call in calls:
            with pytest.raises(InvalidArtifactError):
                call(value)
    assert list(root.parent.iterdir()) == []  # not even the root was created
    # Deletes of what does not exist create nothing either.
    assert stores.contracts.delete(T, ENV, "c1") is False
    assert stores.job_runs.delete(T, ENV, "r1") is False
    with pytest.raises(ConflictError):
        stores.job_runs.delete(T, ENV, "r1", if_match="1-1-abc")
    assert not root.exists()
    safe = SafeRoot(root)
    for segment in ["..", ".", "", "a/b", "/etc", "a\x00b"]:
        with pytest.raises(ScopeViolationError):
            safe.join(T, segment)
    assert safe.join(T, ENV) == str(root / T / ENV)


@pytest.mark.reliability
def test_planted_symlink_cannot_lead_outside(stores: Stores, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir(parents=True)
    (root / "evil").symlink_to(outside)
    with pytest.raises(ScopeViolationError):
        stores.contracts.put(make_contract("evil", ENV, "c1"))
    with pytest.raises(ScopeViolationError):
        stores.job_runs.get("evil", ENV, "r1")
    assert list(outside.iterdir()) == []
    # A link that stays inside the root is fine (e.g. an alias of a tenant folder).
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real")
    stores.job_runs.put(make_run("alias", ENV, "r1"))
    assert (root / "real" / ENV / "job_runs" / "r1.json").is_file()


@pytest.mark.reliability
def test_a_link_planted_after_a_folder_was_checked_is_refused(
    stores: Stores, root: Path, tmp_path: Path
) -> None:
    # The scope's folder is remembered by the directory it led to; a tenant folder swapped for a
    # link afterwards leads to another directory and is checked again, segment by segment.
    stores.job_runs.put(make_run(T, ENV, "r1"))
    stores.contracts.put(make_contract(T, ENV, "c1"))
    outside = tmp_path / "outside"
    shutil.copytree(root / T, outside)
    shutil.rmtree(root / T)
    (root / T).symlink_to(outside)
    with pytest.raises(ScopeViolationError):
        stores.job_runs.put(make_run(T, ENV, "r2"))
    with pytest.raises(ScopeViolationError):
        stores.contracts.put(make_contract(T, ENV, "c1", "2.0.0"))
    with pytest.raises(ScopeViolationError):
        stores.job_runs.get(T, ENV, "r1")
    assert not (outside / ENV / "job_runs" / "r2.json").exists()
    assert not (outside / ENV / "contracts" / "c1" / "2.0.0.json").exists()


@pytest.mark.reliability
def test_rebuild_ignores_foreign_names(stores: Stores, root: Path) -> None:
    stores.contracts.put(make_contract(T, ENV, "c1"))
    folder = root / T / ENV / "contracts"
    (folder / "not an id").mkdir()
    (folder / "not an id" / "1.0.0.json").write_bytes(b"{}")
    (folder / "c1" / "bad version!.json").write_bytes(b"{}")
    (folder / "README.md").write_text("notes")
    (folder / ".index.json").unlink()
    assert [c.contract_id for c in stores.contracts.list(T, ENV)] == ["c1"]
    assert stores.contracts.require(T, ENV, "c1").version == "1.0.0"
    assert (folder / "README.md").exists()
    assert (folder / "not an id" / "1.0.0.json").exists()


# -- index --------------------------------------------------------------------------------------


def _fill(stores: Stores) -> None:
    for i in range(5):
        stores.contracts.put(make_contract(T, ENV, f"c{i}", "1.0.0", dataset_types=["orders"]))
        stores.contracts.put(with_count(make_contract(T, ENV, f"c{i}", "1.1.0"), i))
        stores.job_runs.put(make_run(T, ENV, f"r{i}", submitted_at=BASE_TIME + timedelta(minutes=i % 2)))
    stores.job_runs.put(make_run(T, ENV, "no-time", status="running"))


def _view(stores: Stores) -> tuple[Any, ...]:
    contracts = [canonical_json(c) for c in stores.contracts.iter_all(T, ENV)]
    etags = [
        stores.contracts.get_entry(T, ENV, f"c{i}", v).etag  # type: ignore[union-attr]
        for i in range(5)
        for v in ("1.0.0", "1.1.0")
    ]
    history = stores.contracts.history(T, ENV, "c3", "1.1.0")
    runs = [canonical_json(r) for r in stores.job_runs.list_by_tenant(T)]
    latest = canonical_json(stores.contracts.get_latest_for_dataset(T, ENV, "orders"))
    return contracts, etags, history, runs, latest


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated", "wrong-format"])
def test_index_is_rebuilt_with_the_same_answers(stores: Stores, root: Path, damage: str) -> None:
    _fill(stores)
    before = _view(stores)
    run_etag = stores.job_runs.get_entry(T, ENV, "r1").etag  # type: ignore[union-attr]
    for kind in ("contracts", "job_runs"):
        index = root / T / ENV / kind / ".index.json"
        if damage == "deleted":
            index.unlink()
        elif damage == "garbage":
            index.write_bytes(b"\x00\xff not json")
        elif damage == "truncated":
            index.write_bytes(index.read_bytes()[:50])
        else:
            index.write_text(json.dumps({"format": 99, "entries": []}))
    fresh = open_filesystem_stores(f"file://{root}")  # no in-memory cache either
    assert _view(fresh) == before
    assert _view(stores) == before
    # Versioned etags derive from the files, so they survive; a run's revision number restarts.
    etag = fresh.job_runs.get_entry(T, ENV, "r1").etag  # type: ignore[union-attr]
    assert etag.split("-")[1:] == run_etag.split("-")[1:]
    assert json.loads((root / T / ENV / "contracts" / ".index.json").read_bytes())["format"] == 1


def test_hand_edit_is_detected_and_becomes_a_revision(stores: Stores, root: Path) -> None:
    contract = make_contract(T, ENV, "c1")
    old = stores.contracts.put(contract)
    edited = with_count(contract, 42)
    (root / T / ENV / "contracts/c1/1.0.0.json").write_bytes(canonical_json(edited))
    entry = stores.contracts.get_entry(T, ENV, "c1", "1.0.0")
    assert entry is not None
    assert entry.artifact == edited
    assert entry.etag != old
    assert [r.revision for r in stores.contracts.history(T, ENV, "c1", "1.0.0")] == [1, 2]
    assert stores.contracts.get_revision(T, ENV, "c1", "1.0.0", 2) == edited
    with pytest.raises(ConflictError):
        stores.contracts.put(with_count(contract, 1), if_match=old)
    assert stores.contracts.put(with_count(contract, 1), if_match=entry.etag)


@pytest.mark.parametrize("damage", ["torn", "previous", "missing"])
def test_a_crash_between_revision_and_current_file_is_repaired_from_the_history(
    root: Path, damage: str
) -> None:
    """The durable history revision is the commit point; the current file is a copy rewritten in
    place. A writer killed before the copy is complete leaves it torn, still the previous
    revision, or (first revision of a version) absent; the next lock holder restores it."""
    stores = open_filesystem_stores(f"file://{root}")
    contract = with_count(make_contract(T, ENV, "c1"), 1)
    stores.contracts.put(contract)
    newer = with_count(contract, 123456)
    etag = stores.contracts.put(newer)
    folder = root / T / ENV / "contracts"
    current = folder / "c1" / "1.0.0.json"
    if damage == "torn":
        current.write_bytes(canonical_json(newer)[:40])
    elif damage == "previous":
        current.write_bytes(canonical_json(contract))
    else:
        current.unlink()
    (folder / ".lock").write_bytes(DIRTY)  # what a killed writer leaves
    fresh = open_filesystem_stores(f"file://{root}")
    entry = fresh.contracts.get_entry(T, ENV, "c1", "1.0.0")
    assert entry is not None and entry.artifact == newer and entry.etag == etag
    assert current.read_bytes() == canonical_json(newer)
    assert [r.revision for r in fresh.contracts.history(T, ENV, "c1", "1.0.0")] == [1, 2]
    assert dirty_locks(root) == []


def test_latest_follows_versions_added_or_removed_behind_the_index(stores: Stores, root: Path) -> None:
    stores.contracts.put(make_contract(T, ENV, "c1", "1.0.0"))
    folder = root / T / ENV / "contracts" / "c1"
    # As a git pull would: a new version appears, without history or index entry.
    (folder / "1.1.0.json").write_bytes(canonical_json(make_contract(T, ENV, "c1", "1.1.0")))
    assert stores.contracts.require(T, ENV, "c1").version == "1.1.0"
    assert [r.revision for r in stores.contracts.history(T, ENV, "c1", "1.1.0")] == [1]
    (folder / "1.1.0.json").unlink()
    assert stores.contracts.require(T, ENV, "c1").version == "1.0.0"
    assert stores.contracts.versions(T, ENV, "c1") == ["1.0.0"]


def test_plain_canonical_files_open_as_a_store(root: Path) -> None:
    # A tree as `dq-stores export` writes it (or as checked out from git without the store's
    # hidden files) is a store: the index and first history revisions are made on first use.
    contract = make_contract(T, ENV, "c1", "1.0.0")
    run = make_run(T, "prod", "r1", submitted_at=BASE_TIME)
    for path, model in [
        (f"{T}/{ENV}/contracts/c1/1.0.0.json", contract),
        (f"{T}/prod/job_runs/r1.json", run),
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(canonical_json(model))
    stores = open_filesystem_stores(f"file://{root}")
    assert stores.contracts.list(T, ENV).items == [contract]
    assert [r.revision for r in stores.contracts.history(T, ENV, "c1", "1.0.0")] == [1]
    assert list(stores.job_runs.list_by_tenant(T)) == [run]
    assert stores.job_runs.list_scopes() == [Scope(T, "prod")]
    assert stores.contracts.list_scopes() == [Scope(T, ENV)]
    assert stores.contracts.put(
        with_count(contract, 1), if_match=stores.contracts.get_entry(T, ENV, "c1").etag
    )  # type: ignore[union-attr]


def test_corrupt_file_is_named(stores: Stores, root: Path) -> None:
    stores.contracts.put(make_contract(T, ENV, "c1"))
    stores.contracts.put(make_contract(T, ENV, "c2"))
    (root / T / ENV / "contracts/c1/1.0.0.json").write_bytes(b'{"contract_id": "c1", ')
    with pytest.raises(InvalidArtifactError, match=r"acme/dev/contracts/c1/1\.0\.0\.json"):
        stores.contracts.get(T, ENV, "c1")
    assert stores.contracts.get(T, ENV, "c2") is not None  # the rest of the folder still works
    with pytest.raises(InvalidArtifactError, match=r"acme/dev/contracts/c1/1\.0\.0\.json"):
        stores.contracts.list(T, ENV)
    stores.job_runs.put(make_run(T, ENV, "r1"))
    (root / T / ENV / "job_runs/.index.json").unlink()
    (root / T / ENV / "job_runs/r1.json").write_bytes(b"")
    with pytest.raises(InvalidArtifactError, match=r"acme/dev/job_runs/r1\.json"):
        stores.job_runs.get(T, ENV, "r1")


def test_foreign_scope_in_a_folder_is_refused(stores: Stores, root: Path) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1"))
    # A file moved in from another tenant must never be served as this tenant's.
    other = make_run("other", ENV, "r2")
    (root / T / ENV / "job_runs/r2.json").write_bytes(canonical_json(other))
    with pytest.raises(ScopeViolationError):
        stores.job_runs.get(T, ENV, "r2")
    (root / T / ENV / "job_runs/r2.json").unlink()
    # Two scopes sharing one folder (case-insensitive filesystems): the index says whose it is.
    index = root / T / ENV / "job_runs/.index.json"
    index.write_bytes(index.read_bytes().replace(b'"tenant":"acme"', b'"tenant":"ACME"'))
    with pytest.raises(ScopeViolationError, match="case"):
        stores.job_runs.get(T, ENV, "r1")


# -- atomicity: injected failures ---------------------------------------------------------------


class FailNth:
    """Replace an ``os`` function so that its ``n``-th call raises ``error``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, n: int, error: OSError) -> None:
        self.real = getattr(os, name)
        self.n, self.calls, self.error = n, 0, error
        monkeypatch.setattr(os, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return self.real(*args, **kwargs)


class FailNthWrite:
    """The ``n``-th file write step fails: a rename into place (``os.replace``) or the end of an
    in-place rewrite (``os.ftruncate``: the index, written in place when it is a lazy cache)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int, error: OSError) -> None:
        self.n, self.calls, self.error = n, 0, error
        for name in ("replace", "ftruncate"):
            monkeypatch.setattr(os, name, self._counted(getattr(os, name)))

    def _counted(self, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.n:
                raise self.error
            return real(*args, **kwargs)

        return call


def _assert_failed_cleanly(exc: BackendUnavailableError, root: Path, before: dict[str, bytes]) -> None:
    assert str(root) not in str(exc)
    assert "acme/" in str(exc)
    assert snapshot(root) == before
    assert garbage(root) == []
    assert dirty_locks(root) == []


@pytest.mark.reliability
@pytest.mark.parametrize("n", [1, 2, 3])
def test_failed_replace_changes_nothing(
    stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    contract = make_contract(T, ENV, "c1")
    etag = stores.contracts.put(contract)
    stores.job_runs.put(make_run(T, ENV, "r1", status="running"))
    before = snapshot(root)
    # n = 1: the history file, 2: the current file, 3: the index.
    with monkeypatch.context() as m:
        FailNthWrite(m, n, OSError(errno.EIO, "Input/output error"))
        with pytest.raises(BackendUnavailableError, match="Input/output error") as exc_info:
            stores.contracts.put(with_count(contract, 1), if_match=etag)
    _assert_failed_cleanly(exc_info.value, root, before)
    assert stores.contracts.get_entry(T, ENV, "c1").etag == etag  # type: ignore[union-attr]
    assert stores.contracts.put(with_count(contract, 1), if_match=etag)  # the same retry succeeds

    before = snapshot(root)
    with monkeypatch.context() as m:
        FailNthWrite(m, min(n, 2), OSError(errno.EIO, "Input/output error"))
        with pytest.raises(BackendUnavailableError) as exc_info:
            stores.job_runs.put(make_run(T, ENV, "r1", status="succeeded"))
    _assert_failed_cleanly(exc_info.value, root, before)
    assert stores.job_runs.get(T, ENV, "r1").status == "running"  # type: ignore[union-attr]


@pytest.mark.reliability
def test_failed_create_and_delete_change_nothing(
    stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores.contracts.put(make_contract(T, ENV, "c1"))
    stores.contracts.put(make_contract(T, ENV, "c1", "2.0.0"))
    before = snapshot(root)
    for n in (1, 2, 3):
        with monkeypatch.context() as m:
            FailNthWrite(m, n, OSError(errno.ENOSPC, "No space left on device"))
            with pytest.raises(BackendUnavailableError, match="No space left"):
                stores.contracts.put(make_contract(T, ENV, "c2"))
        assert snapshot(root) == before
        assert stores.contracts.get(T, ENV, "c2") is None
    for version in ("1.0.0", None):
        with monkeypatch.context() as m:
            FailNthWrite(m, 1, OSError(errno.EIO, "Input/output error"))  # the index
            with pytest.raises(BackendUnavailableError) as exc_info:
                stores.contracts.delete(T, ENV, "c1", version)
        _assert_failed_cleanly(exc_info.value, root, before)
    assert stores.contracts.versions(T, ENV, "c1") == ["2.0.0", "1.0.0"]


@pytest.mark.reliability
def test_disk_full_while_writing(stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1", status="running"))
    before = snapshot(root)
    with monkeypatch.context() as m:
        # The document's first write: its journal record (after the lock marker's pwrite) on
        # Linux, the temp file elsewhere.
        if BOOT_ID is not None:
            FailNth(m, "pwrite", 2, OSError(errno.ENOSPC, "No space left on device"))
        else:
            FailNth(m, "write", 1, OSError(errno.ENOSPC, "No space left on device"))
        with pytest.raises(
            BackendUnavailableError, match=r"acme/dev/job_runs/r1\.json: No space left"
        ) as exc_info:
            stores.job_runs.put(make_run(T, ENV, "r1", status="succeeded"))
    _assert_failed_cleanly(exc_info.value, root, before)


@pytest.mark.reliability
@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_put_many_is_all_or_nothing(
    stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1", status="succeeded"))
    stores.job_runs.put(make_run(T, "prod", "p1", status="running"))
    before = snapshot(root)
    batch = [make_run(T, "prod", "p1", status="succeeded"), make_run(T, ENV, "r2")]
    with pytest.raises(InvalidArtifactError, match="status"):  # r1 may not leave 'succeeded'
        stores.job_runs.put_many([*batch, make_run(T, ENV, "r1", status="running")])
    assert snapshot(root) == before
    # The files of both folders, then the two indexes: fail at each step in turn.
    with monkeypatch.context() as m:
        FailNthWrite(m, step, OSError(errno.EIO, "Input/output error"))
        with pytest.raises(BackendUnavailableError):
            stores.job_runs.put_many(batch)
    assert snapshot(root) == before
    assert dirty_locks(root) == []
    assert garbage(root) == []
    etags = stores.job_runs.put_many(batch)
    assert [stores.job_runs.get_entry(T, e, j).etag for e, j in (("prod", "p1"), (ENV, "r2"))] == etags  # type: ignore[union-attr]


@pytest.mark.reliability
def test_lock_wait_is_bounded(root: Path) -> None:
    with open_filesystem_stores(f"file://{root}", lock_timeout=0.2) as s:
        s.job_runs.put(make_run(T, ENV, "r1"))
        with ScopeLock(str(root / T / ENV / "job_runs" / ".lock"), exclusive=True, timeout=1):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="timed out"):
                s.job_runs.put(make_run(T, ENV, "r2"))
            assert time.monotonic() - started < 2
        s.job_runs.put(make_run(T, ENV, "r2"))


# -- atomicity: real crashes --------------------------------------------------------------------


def _crash_on(name: str, n: int, after: bool) -> None:
    """In a child process: die (no cleanup, like SIGKILL) at the n-th call of ``os.<name>``."""
    real = getattr(os, name)
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n and not after:
            os._exit(17)
        result = real(*args, **kwargs)
        if calls == n:
            os._exit(17)
        return result

    setattr(os, name, dying)


def _child_update(root: str, name: str, n: int, after: bool) -> None:
    stores = open_filesystem_stores(f"file://{root}")
    contract = stores.contracts.require(T, ENV, "c1", "1.0.0")
    run = stores.job_runs.get(T, ENV, "r1")
    _crash_on(name, n, after)
    stores.contracts.put(with_count(contract, 2))
    stores.job_runs.put(with_count(run, 2))
    stores.contracts.delete(T, ENV, "c1", "2.0.0")
    stores.contracts.delete(T, ENV, "c9")
    os._exit(0)


@pytest.mark.reliability
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize(
    ("name", "n"),
    [
        # Linux (journaled puts): the contract put is pwrite 2 / fdatasync 1 (its journal
        # record), replace 1 (the history file), ftruncate 1 and 2 (the current file and the
        # index, in place); the run put is pwrite 7 / fdatasync 2 (its record), pwrite 8 and
        # ftruncate 3 (the run file, in place), ftruncate 4 (the index); the first delete empties
        # the journal (ftruncate 5, fdatasync 3), then renames. Elsewhere the same numbers land
        # on the durable atomic writes.
        ("pwrite", 2),
        ("fdatasync", 1),
        ("replace", 1),
        ("ftruncate", 1),
        ("ftruncate", 2),
        ("pwrite", 7),
        ("fdatasync", 2),
        ("pwrite", 8),
        ("ftruncate", 3),
        ("ftruncate", 4),
        ("ftruncate", 5),
        ("fdatasync", 3),
        ("rename", 1),
        ("rename", 2),
        ("rename", 3),
        ("ftruncate", 6),
    ],
)
def test_crash_at_each_step_recovers(disk_root: Path, name: str, n: int, after: bool) -> None:
    root = disk_root
    stores = open_filesystem_stores(f"file://{root}")
    # The child writes count 2 over count 10: a shorter document, so a file rewritten in place
    # and cut short by the crash is torn (the new bytes, then the old tail).
    contract = with_count(make_contract(T, ENV, "c1"), 10)
    stores.contracts.put(contract)
    stores.contracts.put(make_contract(T, ENV, "c1", "2.0.0"))
    stores.contracts.put(make_contract(T, ENV, "c9", "1.0.0"))
    stores.job_runs.put(with_count(make_run(T, ENV, "r1", status="running"), 10))
    child = FORK.Process(target=_child_update, args=(str(root), name, n, after))
    child.start()
    child.join(20)
    assert child.exitcode == 17, "the child did not reach the crash point"
    _check_tree(root)
    fresh = open_filesystem_stores(f"file://{root}")
    got = fresh.contracts.require(T, ENV, "c1", "1.0.0")
    assert got.metadata["count"] in (10, 2)
    _check_history(fresh, "c1", "1.0.0")
    assert fresh.job_runs.get(T, ENV, "r1").metadata["count"] in (10, 2)  # type: ignore[union-attr]
    versions = fresh.contracts.versions(T, ENV, "c1")
    assert versions in (["2.0.0", "1.0.0"], ["1.0.0"])
    list(fresh.job_runs.list_by_tenant(T))
    fresh.contracts.list(T, ENV)
    assert garbage(root) == []
    assert dirty_locks(root) == []
    _check_tree(root, repaired=True)
    _check_index_matches_files(root)
    # Everything still works afterwards.
    fresh.contracts.put(with_count(got, 3), if_match=fresh.contracts.get_entry(T, ENV, "c1", "1.0.0").etag)  # type: ignore[union-attr]


def _check_tree(root: Path, *, repaired: bool = False) -> None:
    """Every artifact file is complete canonical JSON (old or new, never partial), except, right
    after a crash, in a folder whose lock says a writer died there: a file rewritten in place
    (an index, a current file, a journaled run file) may be torn until the next lock holder
    repairs the folder from its history and journal. ``repaired``: no exception any more.
    """
    for path in root.rglob("*.json"):
        folder = next(p for p in path.parents if (p / ".lock").exists())
        if not repaired and (folder / ".lock").read_bytes()[:1] == DIRTY:
            continue
        if path.name.startswith("."):
            if path.name == ".index.json":
                json.loads(path.read_bytes())
            continue
        data = path.read_bytes()
        kind = path.relative_to(root).parts[2]
        model = {"contracts": DataContract, "job_runs": JobRun}.get(kind)
        assert model is not None
        assert canonical_json(model.model_validate_json(data)) == data


def _check_history(stores: Stores, artifact_id: str, version: str) -> None:
    revisions = stores.contracts.history(T, ENV, artifact_id, version)
    assert [r.revision for r in revisions] == list(range(1, len(revisions) + 1))
    entry = stores.contracts.get_entry(T, ENV, artifact_id, version)
    assert entry is not None
    assert revisions[-1].etag == entry.etag
    assert len({r.etag for r in revisions}) == len(revisions)
    assert stores.contracts.get_revision(T, ENV, artifact_id, version, len(revisions)) == entry.artifact


def _check_index_matches_files(root: Path) -> None:
    """What the (possibly repaired) index answers equals what a rebuild from the files answers."""
    stores = open_filesystem_stores(f"file://{root}")
    before = [
        [
            (canonical_json(c), stores.contracts.get_entry(T, ENV, c.contract_id, c.version).etag)
            for c in stores.contracts.iter_all(T, ENV)
        ],  # type: ignore[union-attr]
        [canonical_json(r) for r in stores.job_runs.list_by_tenant(T)],
    ]
    for index in root.rglob(".index.json"):
        index.unlink()
    stores = open_filesystem_stores(f"file://{root}")
    after = [
        [
            (canonical_json(c), stores.contracts.get_entry(T, ENV, c.contract_id, c.version).etag)
            for c in stores.contracts.iter_all(T, ENV)
        ],  # type: ignore[union-attr]
        [canonical_json(r) for r in stores.job_runs.list_by_tenant(T)],
    ]
    assert after == before


def _writer_forever(root: str) -> None:
    stores = open_filesystem_stores(f"file://{root}")
    start = stores.contracts.require(T, ENV, "c1").metadata["count"]
    i = 0
    while True:
        i += 1
        stores.contracts.put(with_count(make_contract(T, ENV, "c1"), start + i))
        stores.job_runs.put(make_run(T, ENV, "r1", status="running", metadata={"count": i}))
        stores.job_runs.put_many(
            [
                make_run(T, env, f"b{i % 3}", submitted_at=BASE_TIME, metadata={"i": i})
                for env in (ENV, "prod")
            ]
        )
        if i % 2:
            stores.contracts.put(make_contract(T, ENV, "c2", "2.0.0", metadata={"i": i}))
        else:
            stores.contracts.delete(T, ENV, "c2")


@pytest.mark.reliability
def test_sigkill_mid_writes_leaves_old_or_new(root: Path) -> None:
    rng = random.Random(7)
    stores = open_filesystem_stores(f"file://{root}")
    stores.contracts.put(with_count(make_contract(T, ENV, "c1"), 0))
    last = 0
    dirty_seen = 0
    for _round in range(12):
        child = FORK.Process(target=_writer_forever, args=(str(root),))
        child.start()
        time.sleep(rng.uniform(0.05, 0.15))
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(5)
        dirty_seen += bool(dirty_locks(root))
        _check_tree(root)
        count = stores.contracts.require(T, ENV, "c1").metadata["count"]
        assert count >= last  # the last acknowledged write is never lost
        last = count
        _check_history(stores, "c1", "1.0.0")
        list(stores.job_runs.list_by_tenant(T))
        assert stores.contracts.versions(T, ENV, "c2") in ([], ["2.0.0"])
        assert garbage(root / T / ENV / "contracts") == []
        assert dirty_locks(root) == []
        _check_tree(root, repaired=True)
    assert last > 0
    assert dirty_seen, "no kill landed inside a write: the test did not exercise recovery"
    _check_index_matches_files(root)


# -- concurrency --------------------------------------------------------------------------------


def _increment_run(root: str, times: int) -> None:
    stores = open_filesystem_stores(f"file://{root}")
    for _ in range(times):
        while True:
            entry = stores.job_runs.get_entry(T, ENV, "counter")
            assert entry is not None
            metadata = {**entry.artifact.metadata, "count": entry.artifact.metadata["count"] + 1}
            try:
                stores.job_runs.put(replace_fields(entry.artifact, metadata=metadata), if_match=entry.etag)
            except ConflictError:
                continue
            break


@pytest.mark.reliability
def test_processes_read_modify_write_job_run_exactly(stores: Stores, root: Path) -> None:
    stores.job_runs.put(make_run(T, ENV, "counter", status="running", metadata={"count": 0}))
    workers = [FORK.Process(target=_increment_run, args=(str(root), 25)) for _ in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    run = stores.job_runs.get(T, ENV, "counter")
    assert run is not None
    assert run.metadata["count"] == 400
    assert dirty_locks(root) == []
    assert garbage(root) == []


def _create_only(root: str, n: int, results: Any) -> None:
    stores = open_filesystem_stores(f"file://{root}")
    try:
        stores.contracts.put(with_count(make_contract(T, ENV, "race"), n), create_only=True)
        results.put(n)
    except ConflictError:
        results.put(-1)


@pytest.mark.reliability
def test_processes_create_only_has_one_winner(root: Path) -> None:
    results = FORK.Queue()
    workers = [FORK.Process(target=_create_only, args=(str(root), n, results)) for n in range(6)]
    for w in workers:
        w.start()
    outcomes = sorted(results.get(timeout=30) for _ in workers)
    for w in workers:
        w.join(10)
    winners = [n for n in outcomes if n >= 0]
    assert len(winners) == 1
    assert outcomes.count(-1) == 5
    stores = open_filesystem_stores(f"file://{root}")
    assert stores.contracts.require(T, ENV, "race").metadata["count"] == winners[0]
    assert len(stores.contracts.history(T, ENV, "race", "1.0.0")) == 1


# -- the same answers as the SQL backend --------------------------------------------------------


def _dataset() -> tuple[list[Any], list[Any], list[Any], list[JobRun]]:
    rng = random.Random(11)
    versions = [
        "1.0.0",
        "1.10.0",
        "1.9.0",
        "1.2",
        "1.2.0",
        "2.0.0-rc.1",
        "2.0.0-rc.10",
        "2.0.0",
        "v3",
        "zeta",
    ]
    contracts, definitions, profiles = [], [], []
    for i, version in enumerate(versions * 2):
        aid = f"a{i % 3}"
        status = rng.choice(["approved", "approved", "retired", "draft"])
        types = rng.sample(["orders", "Customers", "payments"], rng.randint(1, 2))
        contracts.append(make_contract(T, ENV, aid, version, dataset_types=types, status=status))
        tags = rng.sample(["daily", "critical", "pii"], rng.randint(0, 2))
        trigger = rng.choice(["MANUAL", "SCHEDULED", "EXTERNAL_EVENT"])
        definitions.append(
            make_job_definition(
                T,
                ENV,
                aid,
                version,
                tags=tags,
                trigger_type=trigger,
                status=rng.choice(["active", "retired"]),
            )
        )
        actions = rng.sample(["SEND_NOTIFICATION", "EMIT_LINEAGE", "OPEN_TICKET"], rng.randint(1, 2))
        profiles.append(make_action_profile(T, ENV, aid, version, action_types=actions, tags=tags))
    runs = []
    for _ in range(30):
        i = rng.randint(0, 20)
        env = rng.choice([ENV, "prod"])
        when = BASE_TIME + timedelta(minutes=rng.randint(0, 6))
        stamp = rng.choice(["submitted_at", "started_at", "completed_at"])
        runs.append(
            make_run(
                T,
                env,
                f"run-{i:02d}",
                job_type=rng.choice(["validation", "cleansing", "profiling"]),
                status="running" if i % 3 else "pending",
                job_definition_id=rng.choice([None, "jd1", "jd2"]),
                dataset_type=rng.choice([None, "orders", "Payments"]),
                dagster_run_id=rng.choice([None, "dg1", "dg2"]),
                asset_key=rng.choice([None, "asset/a"]),
                partition_key=rng.choice([None, "2024-05-01"]),
                **{stamp: when},
            )
        )
    return contracts, definitions, profiles, runs


def _pages(fetch: Callable[[str | None], Any]) -> list[tuple[list[bytes], str | None]]:
    out = []
    cursor = None
    while True:
        page = fetch(cursor)
        out.append(([canonical_json(x) for x in page.items], page.next_cursor))
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_listings_match_the_sql_backend(stores: Stores) -> None:
    sql = open_stores("memory://")
    contracts, definitions, profiles, runs = _dataset()
    for backend in (stores, sql):
        for c, d, p in zip(contracts, definitions, profiles, strict=True):
            backend.contracts.put(c)
            backend.job_definitions.put(d)
            backend.action_profiles.put(p)
        for run in runs:
            backend.job_runs.put(run)

    def same(call: Callable[[Stores], Any]) -> None:
        assert call(stores) == call(sql)

    for limit in (1, 3, 7, 1000):
        for kind, filters in [
            ("contracts", {}),
            ("contracts", {"status": "approved"}),
            ("contracts", {"dataset_type": "CUSTOMERS"}),
            ("contracts", {"artifact_id": "a1"}),
            ("job_definitions", {"tags": ["daily"]}),
            ("job_definitions", {"tags": ["daily", "pii"], "trigger_type": "SCHEDULED"}),
            ("job_definitions", {"status": "retired"}),
            ("action_profiles", {"action_type": "EMIT_LINEAGE"}),
            ("action_profiles", {"tags": ["critical"], "artifact_id": "a2"}),
        ]:
            same(
                lambda s, k=kind, f=filters, n=limit: _pages(
                    lambda c: getattr(s, k).list(T, ENV, limit=n, cursor=c, **f)
                )
            )
        for filters in [
            {},
            {"status": "running"},
            {"job_type": "profiling", "dataset_type": "payments"},
            {"job_definition_id": "jd1"},
            {"dagster_run_id": "dg2", "asset_key": "asset/a"},
            {"partition_key": "2024-05-01"},
            {"since": BASE_TIME + timedelta(minutes=2), "until": BASE_TIME + timedelta(minutes=5)},
            {"until": BASE_TIME + timedelta(minutes=3)},
        ]:
            for env in (ENV, "prod"):
                same(
                    lambda s, f=filters, n=limit, e=env: _pages(
                        lambda c: s.job_runs.list(T, e, limit=n, cursor=c, **f)
                    )
                )
    for kind in ("contracts", "job_definitions", "action_profiles"):
        for aid in ("a0", "a1", "a2", "a3", "missing"):
            same(lambda s, k=kind, a=aid: canonical_json(getattr(s, k).get(T, ENV, a)))
    for dataset_type in ("orders", "customers", "PAYMENTS", "none"):
        same(lambda s, d=dataset_type: canonical_json(s.contracts.get_latest_for_dataset(T, ENV, d)))
    same(lambda s: [canonical_json(r) for r in s.job_runs.list_by_tenant(T)])
    same(lambda s: [canonical_json(r) for r in s.job_runs.list_by_tenant(T, "prod")])
    sql.close()


def test_the_index_bytes_are_the_sorted_json_of_the_whole_document(stores: Stores, root: Path) -> None:
    """The index is assembled from per-entry fragments; the bytes must be exactly what encoding
    the whole document with sorted keys gives (the format readers and older versions parse)."""

    def check(count: int) -> None:
        for kind in ("job_runs", "contracts"):
            data = (root / T / ENV / kind / ".index.json").read_bytes()
            assert (
                data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode() + b"\n"
            )
            assert len(json.loads(data)["entries"]) == count

    # Appended entries, then entries replaced in the middle of the folder (a put carries the
    # encoded fragments of the index it changes forward), from one entry up.
    for i in range(5):
        stores.job_runs.put(make_run(T, ENV, f"r{i}", submitted_at=BASE_TIME, metadata={"i": i}))
        stores.contracts.put(make_contract(T, ENV, f"c{i}", name=f"n{i}"))
        check(i + 1)
    for i in (2, 0, 4):
        stores.job_runs.put(make_run(T, ENV, f"r{i}", submitted_at=BASE_TIME, metadata={"i": i, "again": 1}))
        stores.contracts.put(make_contract(T, ENV, f"c{i}", name=f"renamed {i}"))
        check(5)
    reopened = open_filesystem_stores(f"file://{root}")
    assert [r.metadata for r in reopened.job_runs.list_by_tenant(T)] == [
        r.metadata for r in stores.job_runs.list_by_tenant(T)
    ]
