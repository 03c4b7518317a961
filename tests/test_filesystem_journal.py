"""The filesystem backend's journal of single puts (``dq_stores.filesystem.journal``): a put is
committed by its journal record; the files it names are caches until a checkpoint, restored
from the records when a restart may have lost them.

A power cut is played by what it can leave behind: files of journaled puts reverted, torn or
missing (they were written without fsync) and lock markers naming another boot.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dq_stores.canonical import canonical_json
from dq_stores.errors import BackendUnavailableError
from dq_stores.filesystem import journal, open_filesystem_stores
from dq_stores.filesystem.journal import JOURNAL_FILE, read_records
from dq_stores.fsio import _MARKER_SIZE, BOOT_ID, CACHED
from dq_stores.registry import Stores
from dq_stores.testing import make_contract, make_run
from tests.test_filesystem import root, stores, with_count

T, ENV = "acme", "dev"

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(BOOT_ID is None, reason="the journal is used where the boot id is known (Linux)"),
]
__all__ = ["root", "stores"]  # fixtures shared with the other filesystem tests


def runs_folder(root: Path) -> Path:
    return root / T / ENV / "job_runs"


def contracts_folder(root: Path) -> Path:
    return root / T / ENV / "contracts"


def reboot(folder: Path) -> None:
    """What a restart leaves in a lock marker: the state of this boot, under another boot id."""
    lock = folder / ".lock"
    marker = lock.read_bytes()
    assert len(marker) == _MARKER_SIZE
    lock.write_bytes(marker[:1] + b"0" * 36 + marker[37:])


def test_a_put_is_committed_by_one_record(stores: Stores, root: Path) -> None:
    run = make_run(T, ENV, "r1", status="running")
    stores.job_runs.put(run)
    records = read_records(str(runs_folder(root)))
    assert [(r.path, r.data) for r in records] == [("r1.json", canonical_json(run))]
    assert records[0].stamp == (runs_folder(root) / "r1.json").stat().st_mtime_ns
    contract = make_contract(T, ENV, "c1")
    stores.contracts.put(contract)
    stores.contracts.put(with_count(contract, 1))
    assert [r.path for r in read_records(str(contracts_folder(root)))] == [
        "c1/.history/1.0.0/1.json",
        "c1/.history/1.0.0/2.json",
    ]
    # An identical put writes nothing, not even a record.
    stores.contracts.put(with_count(contract, 1))
    assert len(read_records(str(contracts_folder(root)))) == 2


@pytest.mark.parametrize("loss", ["reverted", "torn", "missing"])
def test_a_restart_that_lost_the_files_replays_the_records(root: Path, loss: str) -> None:
    with open_filesystem_stores(f"file://{root}") as s:
        s.job_runs.put(with_count(make_run(T, ENV, "r1", status="running"), 10))
        contract = with_count(make_contract(T, ENV, "c1"), 10)
        s.contracts.put(contract)
        old_run = (runs_folder(root) / "r1.json").read_bytes()
        old_contract = (contracts_folder(root) / "c1/1.0.0.json").read_bytes()
        # The last puts: acknowledged, but only their records are durable.
        s.job_runs.put(with_count(make_run(T, ENV, "r1", status="succeeded"), 2))
        s.job_runs.put(make_run(T, ENV, "r2"))
        etag = s.contracts.put(with_count(contract, 2))
        expected_runs = sorted(canonical_json(r) for r in s.job_runs.list_by_tenant(T))
    files = {
        runs_folder(root) / "r1.json": old_run,
        runs_folder(root) / "r2.json": None,
        contracts_folder(root) / "c1/1.0.0.json": old_contract,
        contracts_folder(root) / "c1/.history/1.0.0/2.json": None,
    }
    for path, old in files.items():
        if loss == "missing" or old is None:
            path.unlink()
        elif loss == "reverted":
            path.write_bytes(old)
        else:
            path.write_bytes(path.read_bytes()[:40])
    reboot(runs_folder(root))
    reboot(contracts_folder(root))
    with open_filesystem_stores(f"file://{root}") as s:
        assert sorted(canonical_json(r) for r in s.job_runs.list_by_tenant(T)) == expected_runs
        assert s.contracts.require(T, ENV, "c1").metadata["count"] == 2
        assert s.contracts.get_entry(T, ENV, "c1").etag == etag  # type: ignore[union-attr]
        assert [r.revision for r in s.contracts.history(T, ENV, "c1", "1.0.0")] == [1, 2]
    # The repair made the files durable and emptied the journals.
    assert (runs_folder(root) / JOURNAL_FILE).stat().st_size == 0
    assert (contracts_folder(root) / JOURNAL_FILE).stat().st_size == 0


def test_a_failed_put_leaves_no_record(stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1", status="running"))
    journal_path = runs_folder(root) / JOURNAL_FILE
    before = journal_path.read_bytes()
    real = os.ftruncate
    calls = 0

    def failing(fd: int, length: int) -> None:  # the run file's in-place rewrite fails
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.EIO, "Input/output error")
        real(fd, length)

    with monkeypatch.context() as m:
        m.setattr(os, "ftruncate", failing)
        with pytest.raises(BackendUnavailableError, match="Input/output error"):
            stores.job_runs.put(make_run(T, ENV, "r1", status="succeeded"))
    assert journal_path.read_bytes() == before
    # Even after a restart the undone put does not come back.
    reboot(runs_folder(root))
    with open_filesystem_stores(f"file://{root}") as s:
        assert s.job_runs.get(T, ENV, "r1").status == "running"  # type: ignore[union-attr]


def test_a_torn_record_ends_the_journal(stores: Stores, root: Path) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1", status="running"))
    path = runs_folder(root) / JOURNAL_FILE
    good = path.read_bytes()
    header, rest = good.split(b"\n", 1)
    # A writer killed while appending: a header whose document is cut short, then garbage.
    path.write_bytes(good + header + b"\n" + rest[:10])
    assert len(read_records(str(runs_folder(root)))) == 1
    path.write_bytes(good + good.replace(b"running", b"RUNNING"))  # the hash no longer matches
    assert len(read_records(str(runs_folder(root)))) == 1
    path.write_bytes(good + b"not json\n" + good)
    assert len(read_records(str(runs_folder(root)))) == 1
    reboot(runs_folder(root))
    with open_filesystem_stores(f"file://{root}") as s:
        assert s.job_runs.get(T, ENV, "r1").status == "running"  # type: ignore[union-attr]
    assert path.stat().st_size == 0


def test_a_full_journal_is_checkpointed(stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "CHECKPOINT_BYTES", 1_000)
    sizes = []
    for i in range(12):
        stores.job_runs.put(make_run(T, ENV, f"r{i}"))
        sizes.append((runs_folder(root) / JOURNAL_FILE).stat().st_size)
    assert max(sizes) <= 1_000 + 500
    assert 0 in sizes  # emptied on the way
    assert len(list(stores.job_runs.list_by_tenant(T))) == 12


def test_a_delete_is_never_undone_by_a_replay(stores: Stores, root: Path) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1"))
    stores.job_runs.put(make_run(T, ENV, "r2"))
    contract = make_contract(T, ENV, "c1")
    stores.contracts.put(contract)
    stores.contracts.put(with_count(contract, 1))
    assert stores.job_runs.delete(T, ENV, "r1")
    assert stores.contracts.delete(T, ENV, "c1")
    # The deletes emptied the journals (into durable files) before they changed anything.
    assert read_records(str(runs_folder(root))) == []
    assert read_records(str(contracts_folder(root))) == []
    reboot(runs_folder(root))
    reboot(contracts_folder(root))
    with open_filesystem_stores(f"file://{root}") as s:
        assert [r.job_id for r in s.job_runs.list_by_tenant(T)] == ["r2"]
        assert s.contracts.get(T, ENV, "c1") is None


def test_a_no_op_write_does_not_checkpoint(stores: Stores, root: Path) -> None:
    stores.job_runs.put(make_run(T, ENV, "r1"))
    size = (runs_folder(root) / JOURNAL_FILE).stat().st_size
    assert not stores.job_runs.delete(T, ENV, "nothing-here")
    assert (runs_folder(root) / JOURNAL_FILE).stat().st_size == size
    assert (runs_folder(root) / ".lock").read_bytes()[:1] == CACHED


def test_a_failed_checkpoint_after_a_put_keeps_the_put_and_its_records(
    stores: Stores, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "CHECKPOINT_BYTES", 100)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(journal, "sync_filesystem", failing)
        stores.job_runs.put(make_run(T, ENV, "r1"))  # committed; the checkpoint after it fails
        assert [r.path for r in read_records(str(runs_folder(root)))] == ["r1.json"]
    assert (runs_folder(root) / ".lock").read_bytes()[:1] == CACHED
    stores.job_runs.put(make_run(T, ENV, "r2"))  # past the limit again: this checkpoint works
    assert read_records(str(runs_folder(root))) == []
    assert [r.job_id for r in stores.job_runs.list_by_tenant(T)] == ["r2", "r1"]
