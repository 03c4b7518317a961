"""The fast lane: pool connections kept checked out for single statements, between transactions.

A single-statement call (a get, a run put, one page) on Postgres used to check a connection out
of SQLAlchemy's ``QueuePool`` and back in: checkout and checkin events, the reset ``ROLLBACK``,
and two autocommit toggles - about 15-20 us of Python on a ~30 us primary-key read, most of what
separated a get from the raw driver (bench rows 1a/1b). The lane keeps up to ``limit`` such
connections checked out, in autocommit, in a LIFO (``list`` ``pop`` / ``append`` are atomic
under the GIL), so such a call costs a pop and an append.

The connections stay the pool's: they count against its bound (``pool_size`` + overflow), and
before a multi-statement transaction takes a connection from the pool, the lane gives its idle
ones back (``give_back``), so a process working sequentially holds one connection in all, as it
did without the lane. From the pool it keeps the idle ping (a lane connection idle for longer
than ``IDLE_PING_SECONDS`` is pinged before use) and disconnect handling (the caller invalidates
a connection found dead, and the lane drops its other idle ones). A connection that leaves the
lane has its session-level scope (row-level security) reset first (``on_give_back``).

This module knows about pooled connections, not about statements or artifacts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

__all__ = ["FastLane"]


class FastLane:
    """Up to ``limit`` pool connections in autocommit, kept checked out and reused LIFO."""

    def __init__(
        self,
        checkout: Callable[[], Any],
        *,
        limit: int,
        idle_ping_seconds: float,
        on_give_back: Callable[[Any], None] | None = None,
    ) -> None:
        """``checkout``: a pool connection (``PoolProxiedConnection``), errors already translated;
        ``on_give_back(dbapi_connection)``: run before a connection with a session scope set
        returns to the pool.
        """
        self._checkout = checkout
        self._limit = limit
        self._idle_ping = idle_ping_seconds
        self._on_give_back = on_give_back
        self._idle: list[tuple[Any, float]] = []
        self._scopes: dict[int, Any] = {}
        self._closed = False

    def acquire(self) -> Any:
        """A live pool connection in autocommit (``.dbapi_connection`` is the driver's)."""
        while True:
            try:
                fairy, idle_since = self._idle.pop()
            except IndexError:
                break
            if time.monotonic() - idle_since <= self._idle_ping or _answers(fairy.dbapi_connection):
                return fairy
            # Dead after a long idle: a restart or an idle timeout; the rest are suspect too.
            self._drop(fairy)
            self.clear()
        fairy = self._checkout()
        try:
            fairy.dbapi_connection.autocommit = True
        except BaseException:
            fairy.invalidate()
            fairy.close()
            raise
        return fairy

    def release(self, fairy: Any, *, broken: bool = False) -> None:
        """Keep ``fairy`` for the next call; ``broken`` (the caller invalidated it): let it go and
        drop every idle one too (a server restart or network cut killed them all).
        """
        if broken:
            self._drop(fairy)
            self.clear()
        elif self._closed or len(self._idle) >= self._limit or not fairy.is_valid:
            self._return(fairy)
        else:
            self._idle.append((fairy, time.monotonic()))

    def give_back(self) -> None:
        """Return every idle connection to the pool (before a transaction takes one from it)."""
        while self._idle:
            try:
                fairy, _ = self._idle.pop()
            except IndexError:
                return
            self._return(fairy)

    def scope_of(self, fairy: Any) -> Any:
        """The scope ``fairy``'s session is set to (row-level security), None when not known."""
        return self._scopes.get(id(fairy))

    def set_scope(self, fairy: Any, scope: Any) -> None:
        if scope is None:
            self._scopes.pop(id(fairy), None)
        else:
            self._scopes[id(fairy)] = scope

    def clear(self) -> None:
        """Close every idle connection (after one was found dead)."""
        while True:
            try:
                fairy, _ = self._idle.pop()
            except IndexError:
                return
            self._drop(fairy)

    def close(self) -> None:
        self._closed = True
        self.give_back()

    def forget(self) -> None:
        """In a forked child: the parent's connections are not ours to use nor to close."""
        self._idle = []
        self._scopes = {}

    def _return(self, fairy: Any) -> None:
        scoped = self._scopes.pop(id(fairy), None) is not None
        try:
            if scoped and self._on_give_back is not None:
                self._on_give_back(fairy.dbapi_connection)
            fairy.dbapi_connection.autocommit = False
        except Exception:  # a broken connection: keep it out of the pool
            with suppress(Exception):
                fairy.invalidate()
        with suppress(Exception):
            fairy.close()

    def _drop(self, fairy: Any) -> None:
        self._scopes.pop(id(fairy), None)
        if fairy.is_valid:  # the caller may have invalidated it already
            with suppress(Exception):
                fairy.invalidate()
        with suppress(Exception):
            fairy.close()


def _answers(conn: Any) -> bool:
    try:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception:
        return False
    return True
