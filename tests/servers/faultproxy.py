"""A TCP proxy on loopback that injects network faults between a client and a server.

Standard library only. Each accepted connection takes the proxy's current
fault (then the fault's remaining count drops by one; at zero the proxy passes
traffic through again):

- ``pass``: forward both ways.
- ``cut``: forward ``nbytes`` in ``direction`` ("down" = server to client, "up" =
  client to server), then close both sockets cleanly (FIN).
- ``reset``: like ``cut`` but abort with a TCP reset (RST).
- ``stall``: forward the request upstream but never send anything back, and
  keep the connection open (a server that stopped answering).
- ``blackhole``: accept, read and discard, never connect upstream, never answer.
- ``status``: read the request head, answer it with HTTP ``status`` (e.g. 503 with
  S3's ``SlowDown`` body) and close, never reaching the server.
- ``delay``: forward both ways, but hold the server's first bytes back for
  ``seconds`` (a server that pauses: shorter or longer than the client's timeout).
- ``trickle``: forward both ways, the server's bytes at ``rate`` bytes a second.

``seconds`` and ``rate`` also slow a ``cut`` or ``reset`` (a slow transfer that then
breaks).

``set(..., sever=True)`` also resets every connection already open, so clients
with pooled connections meet the fault on their next request.  ``randomize(seed)``
instead draws a fault for each new connection from a seeded random generator
(:class:`Chaos`), and counts what it injected in ``injected``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional

MODES = ("pass", "cut", "reset", "stall", "blackhole", "status", "delay", "trickle")


@dataclass
class Fault:
    mode: str = "pass"
    nbytes: int = 0
    direction: str = "down"
    times: Optional[int] = None
    """Connections the fault applies to; None for every one until changed."""
    status: int = 503
    seconds: float = 0.0
    """How long ``delay`` holds the server's first bytes back."""
    rate: int = 0
    """Bytes a second ``trickle`` lets through from the server."""

    @property
    def kind(self) -> str:
        """A short name for counting: the mode, and its direction or status."""
        if self.mode in ("cut", "reset"):
            return f"{self.mode}-{self.direction}"
        if self.mode == "status":
            return f"status-{self.status}"
        return self.mode


class Chaos:
    """Random faults for a soak: each new connection gets one with probability
    ``rate``, drawn from cuts and resets both ways at a random byte, stalls that
    never end, pauses shorter and longer than ``timeout``, 500 and 503 (SlowDown)
    answers, and slow trickles.  Drawn in the proxy's accept thread, one draw per
    connection in order, so a seed replays the same sequence of faults."""

    def __init__(self, seed: int, rate: float, timeout: float) -> None:
        self.random = random.Random(seed)
        self.rate = rate
        self.timeout = timeout

    def draw(self) -> Fault:
        pick = self.random
        if pick.random() >= self.rate:
            return Fault()
        choice = pick.choice(["cut-down", "cut-up", "reset-down", "reset-up", "stall",
                              "pause-short", "pause-long", "500", "503", "trickle"])
        if choice in ("500", "503"):
            return Fault("status", status=int(choice))
        if choice == "stall":
            return Fault("stall")
        if choice == "pause-short":
            return Fault("delay", seconds=pick.uniform(0.05, 0.5) * self.timeout)
        if choice == "pause-long":
            return Fault("delay", seconds=pick.uniform(1.2, 2.0) * self.timeout)
        if choice == "trickle":
            return Fault("trickle", rate=pick.choice([256, 1024]) * 1024)
        mode, direction = choice.split("-")
        return Fault(mode, nbytes=pick.randint(0, 300_000), direction=direction)


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``upstream`` with faults."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._fault = Fault()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self.injected: Counter[str] = Counter()
        """Faults applied, by :attr:`Fault.kind` (``pass`` not counted)."""
        self._chaos: Optional[Chaos] = None
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="faultproxy", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, mode: str, nbytes: int = 0, direction: str = "down",
            times: Optional[int] = None, status: int = 503, sever: bool = False,
            seconds: float = 0.0, rate: int = 0) -> None:
        """Apply a fault to the next ``times`` connections (all, when None); with
        ``sever``, reset the connections open now. Ends :meth:`randomize`."""
        if mode not in MODES or direction not in ("up", "down"):
            raise ValueError(f"unknown fault {mode!r}/{direction!r}")
        with self._lock:
            self._chaos = None
            self._fault = Fault(mode, nbytes, direction, times, status, seconds, rate)
            doomed = self._sockets if sever else []
            self._sockets = [] if sever else self._sockets
        for sock in doomed:
            _close(sock, reset=True)

    def sever(self) -> None:
        """Reset every connection open now (counted as ``sever``), so that pooled
        clients need new connections, which meet the current or random faults."""
        with self._lock:
            doomed, self._sockets = self._sockets, []
            self.injected["sever"] += 1
        for sock in doomed:
            _close(sock, reset=True)

    def randomize(self, seed: int, rate: float = 0.25, timeout: float = 1.0) -> None:
        """From now on, a random fault (:class:`Chaos`) on each new connection with
        probability ``rate``; ``timeout`` is the client's read timeout, which pauses
        are drawn shorter and longer than. ``set`` ends it."""
        with self._lock:
            self._chaos = Chaos(seed, rate, timeout)

    def _next_fault(self) -> Fault:
        with self._lock:
            self.connections += 1
            if self._chaos is not None:
                drawn = self._chaos.draw()
                if drawn.mode != "pass":
                    self.injected[drawn.kind] += 1
                return drawn
            fault = self._fault
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = Fault()
            if fault.mode != "pass":
                self.injected[fault.kind] += 1
            return Fault(fault.mode, fault.nbytes, fault.direction, status=fault.status,
                         seconds=fault.seconds, rate=fault.rate)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client, self._next_fault()),
                             name="faultproxy-connection", daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _serve(self, client: socket.socket, fault: Fault) -> None:
        if fault.mode == "blackhole":
            _drain(client)
            return
        if fault.mode == "status":
            _answer(client, fault.status)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _close(client, reset=True)
            return
        upstream.settimeout(None)
        self._track(upstream)
        if fault.mode == "stall":
            threading.Thread(target=_pump, args=(client, upstream, None, None),
                             name="faultproxy-stall", daemon=True).start()
            _drain(upstream)
            return
        limit_up = fault.nbytes if fault.mode in ("cut", "reset") and fault.direction == "up" \
            else None
        limit_down = fault.nbytes if fault.mode in ("cut", "reset") and \
            fault.direction == "down" else None
        abort = fault.mode == "reset"
        up = threading.Thread(target=_pump, args=(client, upstream, limit_up, abort),
                              name="faultproxy-up", daemon=True)
        up.start()
        _pump(upstream, client, limit_down, abort, delay=fault.seconds, rate=fault.rate)
        up.join(timeout=30)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock, reset=False)
            self._sockets.clear()


_TICK = 0.05
"""Seconds between the slices of a trickle."""


def _pump(source: socket.socket, target: socket.socket, limit: Optional[int],
          abort: Optional[bool], delay: float = 0.0, rate: int = 0) -> None:
    """Copy bytes until EOF, or until ``limit`` bytes, then close both sides; the
    first bytes ``delay`` seconds late, all of them at ``rate`` bytes a second."""
    sent = 0
    slice_size = max(1, int(rate * _TICK)) if rate else 65536
    try:
        while True:
            want = slice_size if limit is None else min(slice_size, limit - sent)
            if want <= 0:
                break
            data = source.recv(want)
            if not data:
                break
            if delay:
                time.sleep(delay)
                delay = 0.0
            target.sendall(data)
            sent += len(data)
            if rate:
                time.sleep(_TICK)
    except OSError:
        pass
    if limit is not None and sent >= limit:
        _close(source, reset=bool(abort))
        _close(target, reset=bool(abort))
        return
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


_ERROR_CODES = {403: "AccessDenied", 404: "NoSuchKey", 429: "TooManyRequests",
                500: "InternalError", 503: "SlowDown"}
"""S3's error code for an injected status, so the body agrees with the status line."""


def _answer(client: socket.socket, status: int) -> None:
    """Read one request head and answer it with ``status`` and an S3-style error body."""
    head = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = client.recv(65536)
            if not data:
                break
            head += data
    code = _ERROR_CODES.get(status, "InternalError")
    body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
            f"<Message>injected {status}</Message></Error>").encode()
    reply = (f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    if not head.startswith(b"HEAD "):
        reply += body
    with contextlib.suppress(OSError):
        client.sendall(reply)
    _close(client, reset=False)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def _close(sock: socket.socket, reset: bool) -> None:
    """Close now (FIN), or abort (RST). ``shutdown`` first: a plain ``close`` while
    another thread is blocked in ``recv`` on the socket sends nothing until that
    ``recv`` returns, which would turn every cut into a stall."""
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
