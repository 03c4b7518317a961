"""Read-modify-write helpers for the concurrency tests, and the worker process that runs them.

``increment`` is the textbook optimistic-concurrency loop: read the entry with its etag, write the
changed artifact with ``if_match``, retry on ``ConflictError``. If ``if_match`` holds, N writers
doing K increments each end at exactly N*K. ``python -m dq_stores.testing._concurrency '<json>'``
runs the same loop in another process against a reopened store (cross-process check). Only
``ConflictError`` is retried: any other error is a failure the tests must see.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from dq_stores.base import JobRunStore, VersionedStore
from dq_stores.errors import ConflictError
from dq_stores.stores import Stores, open_stores
from dq_stores.testing.builders import replace_fields

__all__ = ["increment", "store_of_kind"]

MAX_CONFLICTS = 10_000


def store_of_kind(stores: Stores, kind: str) -> VersionedStore[Any] | JobRunStore:
    store: VersionedStore[Any] | JobRunStore = getattr(stores, kind)
    return store


def increment(
    store: VersionedStore[Any] | JobRunStore,
    tenant: str,
    environment: str,
    artifact_id: str,
    version: str | None,
    times: int,
) -> int:
    """Add 1 to ``metadata["count"]`` ``times`` times with ``if_match``; return the conflicts seen."""
    conflicts = 0
    for _ in range(times):
        while True:
            entry = store.get_entry(tenant, environment, artifact_id, version)
            if entry is None:
                raise AssertionError(f"{artifact_id} vanished during the test")
            metadata = dict(entry.artifact.metadata)
            metadata["count"] = int(metadata.get("count", 0)) + 1
            try:
                store.put(replace_fields(entry.artifact, metadata=metadata), if_match=entry.etag)
            except ConflictError:
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise
                continue
            break
    return conflicts


def main(argv: list[str]) -> int:
    """Worker: open the stores, say ``ready``, wait for the go file, increment, print the result."""
    spec: dict[str, Any] = json.loads(argv[1])
    with open_stores(spec["url"], **spec.get("options", {})) as stores:
        store = store_of_kind(stores, spec["kind"])
        print("ready", flush=True)
        go = Path(spec["go_file"])
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("never told to start")
            time.sleep(0.005)
        conflicts = increment(
            store,
            spec["tenant"],
            spec["environment"],
            spec["artifact_id"],
            spec.get("version"),
            int(spec["times"]),
        )
    print(json.dumps({"conflicts": conflicts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
