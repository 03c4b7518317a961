"""Row 7: ``put`` on the filesystem backend against a raw atomic write of the same canonical bytes
(temp file in the same folder, write, fsync, rename, fsync of the folder: what a durable atomic
write is, and what ours does for the document itself).

7a is a job run (one document plus the scope's run index); 7b a contract (current file plus its
history revision plus the index), where the baseline is still one file.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import data
from bench.harness import Config, Result, check, compare, latency
from bench.services import Services
from dq_stores.canonical import canonical_json
from dq_stores.registry import open_stores

TENANT = "acme"


def atomic_write(path: str, payload: bytes) -> None:
    """The baseline: the durable atomic replace of one file, nothing else."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="dqbench-fs-") as folder:
        root = Path(folder)
        stores = open_stores((root / "store").as_uri())
        raw_dir = root / "raw"
        raw_dir.mkdir()
        try:
            runs = itertools.cycle(
                [data.job_run(TENANT, "run-put", message=f"attempt {i}") for i in range(2)]
            )
            run_docs = itertools.cycle(
                [canonical_json(data.job_run(TENANT, "run-put", message=f"attempt {i}")) for i in range(2)]
            )
            base = data.contract(TENANT)
            contracts = itertools.cycle(
                [base.model_copy(update={"description": f"revision {i}"}) for i in range(2)]
            )
            contract_docs = itertools.cycle(
                [canonical_json(base.model_copy(update={"description": f"revision {i}"})) for i in range(2)]
            )
            run_path = str(raw_dir / "run.json")
            contract_path = str(raw_dir / "contract.json")

            def ours_run() -> Any:
                return stores.job_runs.put(next(runs))

            def raw_run() -> None:
                atomic_write(run_path, next(run_docs))

            def ours_contract() -> Any:
                return stores.contracts.put(next(contracts))

            def raw_contract() -> None:
                atomic_write(contract_path, next(contract_docs))

            ours_run()
            check(stores.job_runs.get(TENANT, data.ENV, "run-put") is not None, "run not stored")
            for n, what, ours, raw in (
                ("7a", "job run", ours_run, raw_run),
                ("7b", "contract (with history revision)", ours_contract, raw_contract),
            ):
                result = Result(
                    n,
                    f"filesystem put of one {what}",
                    "latency",
                    "<= 1.5",
                    1.5,
                    baseline_name="raw atomic write of the same bytes: temp file, write, fsync, rename, fsync folder",
                )
                yield latency(result, *compare(ours, raw, config))
        finally:
            stores.close()
