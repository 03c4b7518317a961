"""One opened ``Stores`` per process and configuration, shared by reference count.

``SharedStores.acquire(key, opener)`` returns a ``Lease`` on the stores ``opener()`` opens: the
first lease for a key opens them, later leases for the same key get the same object (so the same
connection pool), and the stores are closed when the last lease is released. This is what makes a
Dagster run that uses several store resources, the JobRun IO manager and sensors hold ONE pool per
stores configuration instead of one per resource (Dagster initialises a nested resource once per
resource that depends on it).

Keys are opaque strings the caller derives from its configuration (hash secrets in, never put them
in plainly). Thread-safe: opening happens under a per-key lock so two threads asking at once get
one pool. This module only counts and closes; it knows nothing of Dagster or of URLs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from dq_stores.stores import Stores

__all__ = ["Lease", "SharedStores", "shared_stores"]


@dataclass
class _Entry:
    stores: Stores | None = None
    users: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Lease:
    """One user's hold on shared stores; ``release()`` (or leaving the ``with``) exactly once."""

    __slots__ = ("_cache", "_key", "_released", "stores")

    def __init__(self, cache: SharedStores, key: str, stores: Stores) -> None:
        self._cache = cache
        self._key = key
        self._released = False
        self.stores = stores

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._cache._release(self._key)

    def __enter__(self) -> Stores:
        return self.stores

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease({self.stores!r}, released={self._released})"


class SharedStores:
    """Reference-counted cache of opened stores, by configuration key."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, opener: Callable[[], Stores]) -> Lease:
        """A lease on the stores of ``key``, opened with ``opener()`` when nobody holds them.

        If ``opener`` raises, nothing is counted and the error propagates.
        """
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
            entry.users += 1  # counted before opening, so a concurrent release cannot drop the entry
        try:
            with entry.lock:
                if entry.stores is None:
                    entry.stores = opener()
                stores = entry.stores
        except BaseException:
            self._release(key)
            raise
        return Lease(self, key, stores)

    def _release(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._entries[key]
        with entry.lock:
            stores, entry.stores = entry.stores, None
        if stores is not None:
            stores.close()

    def users(self, key: str) -> int:
        """How many leases on ``key`` are held (0: not open)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.users if entry is not None else 0

    def open_keys(self) -> list[str]:
        with self._lock:
            return sorted(k for k, e in self._entries.items() if e.users > 0)


shared_stores = SharedStores()
"""The process-wide cache (what ``dq_dagster.resources.DQStoresResource`` uses)."""
