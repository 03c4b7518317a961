"""A small threaded TCP proxy on 127.0.0.1 that the database-outage tests put between a store and
PostgreSQL, to break the connection at chosen moments.

Controls (all thread-safe, callable from any thread, including from inside a Dagster asset):

* ``cut()`` closes every open connection now (both sides): in-flight statements fail and pooled
  connections are dead.
* ``refuse_for(seconds)`` closes the listening socket, so new connections get ``ECONNREFUSED``
  (what a client sees while a database restarts), and reopens it on the same port afterwards.
* ``outage(seconds)`` is both.
* ``cut_on(marker, refuse_for=..., skip=..., to_client=False)`` arms a trigger: the first
  client-to-server chunk (server-to-client with ``to_client``) containing ``marker``, after
  ``skip`` earlier occurrences, is *not* forwarded (nor the rest of that chunk); instead every connection is cut and new ones are
  refused for ``refuse_for`` seconds. ``cut_on(b"COMMIT")`` breaks a transaction after all its
  statements ran but before the server saw the commit (the most dangerous moment for
  "half-written" state); ``cut_on(COMMIT_REPLY, to_client=True)`` lets the commit happen and loses
  the reply (the client cannot know whether it happened).
* ``pass_through()`` disarms triggers and reopens the listener at once.

What must not live here: assertions or store code; this is test plumbing only.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["TcpProxy", "Trigger", "matches"]

_CHUNK = 65536


def matches(marker: bytes | re.Pattern[bytes], data: bytes) -> int:
    """How often ``marker`` (a byte string or a compiled bytes pattern) occurs in ``data``."""
    return _count(marker, data, 0)


def _count(marker: bytes | re.Pattern[bytes], data: bytes, tail: int) -> int:
    # ``data`` is the previous chunk's tail plus the new chunk; only a match that ends in the new
    # bytes counts (one inside the tail was counted with the previous chunk already).
    if isinstance(marker, bytes):
        count, start = 0, max(0, tail - len(marker) + 1)
        while (found := data.find(marker, start)) >= 0:
            count, start = count + 1, found + len(marker)
        return count
    return sum(1 for m in marker.finditer(data) if m.end() > tail)


@dataclass
class Trigger:
    """An armed ``cut_on``: ``fired`` is set when it cut; ``fired_at`` is when (monotonic)."""

    marker: bytes | re.Pattern[bytes]
    refuse_for: float
    skip: int
    to_client: bool = False
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)
    fired_at: float | None = None

    def wait(self, timeout: float) -> bool:
        return self.fired.wait(timeout)


class _Pair:
    """One proxied connection: the client's socket and ours to the upstream server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                # Linger 0: the peer gets a reset, as when a server or a network path dies.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump thread blocked in recv()
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.accepted = 0
        """Connections accepted since start (each one a new database session)."""
        self.cuts = 0
        """Connections closed by ``cut`` / triggers."""
        self.trace: list[tuple[str, bytes]] | None = None
        """Set to a list to record every forwarded chunk as ``(">" or "<", bytes)`` (debugging)."""
        self._lock = threading.RLock()
        self._pairs: set[_Pair] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._triggers: list[Trigger] = []
        self._reopen_at: float | None = None
        self._reopen_timer: threading.Timer | None = None
        self._closed = False

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listen()
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timer, self._reopen_timer = self._reopen_timer, None
            self._triggers.clear()
        if timer is not None:
            timer.cancel()
        self._stop_listening()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    @property
    def refusing(self) -> bool:
        with self._lock:
            return self._listener is None and not self._closed

    # controls ---------------------------------------------------------------------------------
    def cut(self) -> int:
        """Close every open connection now; returns how many were cut."""
        with self._lock:
            pairs, self._pairs = list(self._pairs), set()
            self.cuts += len(pairs)
        for pair in pairs:
            pair.close()
        return len(pairs)

    def refuse_for(self, seconds: float) -> None:
        """Refuse new connections (``ECONNREFUSED``) for ``seconds``, then accept again."""
        with self._lock:
            if self._closed:
                return
            timer, self._reopen_timer = self._reopen_timer, None
            self._reopen_at = time.monotonic() + seconds
        if timer is not None:
            timer.cancel()
        self._stop_listening()
        new_timer = threading.Timer(seconds, self._reopen)
        new_timer.daemon = True
        with self._lock:
            self._reopen_timer = new_timer
        new_timer.start()

    def outage(self, seconds: float) -> int:
        """Cut every connection and refuse new ones for ``seconds``."""
        self.refuse_for(seconds)
        return self.cut()

    def cut_on(
        self,
        marker: bytes | re.Pattern[bytes],
        *,
        refuse_for: float = 0.0,
        skip: int = 0,
        to_client: bool = False,
    ) -> Trigger:
        """Arm a one-shot trigger (see the module docstring); ``to_client`` watches the server's
        replies instead of the client's messages (the server acted, the client never hears).
        """
        trigger = Trigger(marker, refuse_for, skip, to_client)
        with self._lock:
            self._triggers.append(trigger)
        return trigger

    def pass_through(self) -> None:
        """Disarm triggers and accept connections again at once."""
        with self._lock:
            self._triggers.clear()
            timer, self._reopen_timer = self._reopen_timer, None
        if timer is not None:
            timer.cancel()
        self._reopen()

    def wait_accepting(self, timeout: float) -> bool:
        """Wait until the proxy accepts connections again (after ``refuse_for``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.refusing:
                return True
            time.sleep(0.02)
        return not self.refusing

    # internals --------------------------------------------------------------------------------
    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                sock.bind((self.host, self.port))  # port 0 first time, the same port afterwards
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.05)
        sock.listen(64)
        self.port = sock.getsockname()[1]
        thread = threading.Thread(
            target=self._accept_loop, args=(sock,), name="tcp-proxy-accept", daemon=True
        )
        with self._lock:
            self._listener = sock
            self._accept_thread = thread
        thread.start()

    def _stop_listening(self) -> None:
        with self._lock:
            sock, self._listener = self._listener, None
            thread, self._accept_thread = self._accept_thread, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            sock.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _reopen(self) -> None:
        with self._lock:
            if self._closed or self._listener is not None:
                return
            self._reopen_at = None
            self._reopen_timer = None
            self._listen()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed (refuse_for / close)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._listener is not listener:
                    pair.close()
                    return
                self._pairs.add(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _pump(self, pair: _Pair, client_to_server: bool) -> None:
        source, sink = (pair.client, pair.upstream) if client_to_server else (pair.upstream, pair.client)
        tail = b""
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                trigger = self._match(tail + data, len(tail), to_client=not client_to_server)
                if trigger is not None:
                    self._fire(trigger)
                    return
                tail = data[-64:]
                if self.trace is not None:
                    self.trace.append((">" if client_to_server else "<", data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.close()

    def _match(self, data: bytes, tail: int, *, to_client: bool) -> Trigger | None:
        # Occurrences are counted, not chunks: how a client's messages are split into TCP sends
        # varies between runs, the number of messages does not.
        with self._lock:
            for trigger in self._triggers:
                if trigger.to_client != to_client:
                    continue
                found = _count(trigger.marker, data, tail)
                if not found:
                    continue
                if trigger.seen + found <= trigger.skip:
                    trigger.seen += found
                    continue
                self._triggers.remove(trigger)
                return trigger
        return None

    def disarm(self) -> None:
        """Forget every trigger that has not fired."""
        with self._lock:
            self._triggers.clear()

    def _fire(self, trigger: Trigger) -> None:
        # Marked first: the cut wakes the client, which may look at the trigger at once. Refuse
        # before cutting, so that no reconnect slips in between.
        trigger.fired_at = time.monotonic()
        trigger.fired.set()
        if trigger.refuse_for > 0:
            self.refuse_for(trigger.refuse_for)
        self.cut()
