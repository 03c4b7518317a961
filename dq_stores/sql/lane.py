"""The fast lane: driver connections kept for single statements, outside SQLAlchemy's pool.

A single-statement call (a get, a run put, one page) on Postgres used to check a connection out
of SQLAlchemy's ``QueuePool`` and back in: checkout and checkin events, the reset ``ROLLBACK``
call, and two autocommit toggles - about 15-20 us of Python on a ~30 us primary-key read, most
of what separated a get from the raw driver (bench rows 1a/1b). The lane keeps up to ``limit``
connections of its own, detached from the pool and in autocommit for good, in a LIFO (``list``
``pop`` / ``append`` are atomic under the GIL), so such a call costs a pop and an append.

What it keeps from the pool: a bound (a non-blocking semaphore; a call that finds every lane
connection busy takes the pool path instead, so concurrency beyond ``limit`` waits on the pool's
own bound), the idle ping (a connection idle for more than ``IDLE_PING_SECONDS`` is pinged before
use), dropping every idle connection when one is found disconnected (a server restart kills them
all), and fork safety (a child process forgets the parent's connections without closing them:
closing would end the parent's sessions).

This module knows about driver connections, not about statements or artifacts.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

__all__ = ["FastLane"]


class FastLane:
    """Up to ``limit`` autocommit driver connections of ``engine``'s database, reused LIFO."""

    def __init__(self, checkout: Callable[[], Any], *, limit: int, idle_ping_seconds: float) -> None:
        """``checkout``: a pool connection (``PoolProxiedConnection``) with the engine's connect
        events applied, errors already translated; the lane detaches it from the pool.
        """
        self._checkout = checkout
        self._limit = limit
        self._idle_ping = idle_ping_seconds
        self._idle: list[tuple[Any, float]] = []
        self._slots = threading.BoundedSemaphore(limit)
        self._closed = False
        self._scopes: dict[int, Any] = {}
        ref = weakref.ref(self)

        def forget_in_child() -> None:
            lane = ref()
            if lane is not None:
                lane._forget()

        os.register_at_fork(after_in_child=forget_in_child)

    def acquire(self) -> Any | None:
        """A live connection, or None when every lane connection is in use (use the pool then)."""
        if self._closed or not self._slots.acquire(blocking=False):
            return None
        try:
            while True:
                try:
                    conn, idle_since = self._idle.pop()
                except IndexError:
                    return self._connect()
                if time.monotonic() - idle_since <= self._idle_ping or _answers(conn):
                    return conn
                # Dead after a long idle: a restart or an idle timeout; the rest are suspect too.
                self._close(conn)
                self.clear()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Any, *, broken: bool = False) -> None:
        """Give ``conn`` back; ``broken`` (a disconnect) closes it and every idle one."""
        try:
            if broken:
                self._close(conn)
                self.clear()
            elif self._closed or getattr(conn, "closed", False):
                self._close(conn)
            else:
                self._idle.append((conn, time.monotonic()))
        finally:
            self._slots.release()

    def scope_of(self, conn: Any) -> Any:
        """The scope ``conn``'s session is set to (row-level security), None when not known."""
        return self._scopes.get(id(conn))

    def set_scope(self, conn: Any, scope: Any) -> None:
        if scope is None:
            self._scopes.pop(id(conn), None)
        else:
            self._scopes[id(conn)] = scope

    def clear(self) -> None:
        """Close every idle connection (those in use are closed when they come back broken)."""
        while True:
            try:
                conn, _ = self._idle.pop()
            except IndexError:
                return
            self._close(conn)

    def close(self) -> None:
        self._closed = True
        self.clear()

    def _connect(self) -> Any:
        fairy = self._checkout()
        fairy.detach()  # ours from now on: never returned to (nor reset by) the pool
        conn: Any = fairy.dbapi_connection
        conn.autocommit = True
        return conn

    def _close(self, conn: Any) -> None:
        self._scopes.pop(id(conn), None)  # before a new connection can take its id
        _close(conn)

    def _forget(self) -> None:
        self._idle = []
        self._scopes = {}
        self._slots = threading.BoundedSemaphore(self._limit)


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


def _close(conn: Any) -> None:
    with suppress(Exception):  # the connection may be gone already
        conn.close()
