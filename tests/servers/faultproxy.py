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

``set(..., sever=True)`` also resets every connection already open, so clients
with pooled connections meet the fault on their next request.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Optional

MODES = ("pass", "cut", "reset", "stall", "blackhole", "status")


@dataclass
class Fault:
    mode: str = "pass"
    nbytes: int = 0
    direction: str = "down"
    times: Optional[int] = None
    """Connections the fault applies to; None for every one until changed."""
    status: int = 503


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``upstream`` with faults."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._fault = Fault()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="faultproxy", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, mode: str, nbytes: int = 0, direction: str = "down",
            times: Optional[int] = None, status: int = 503, sever: bool = False) -> None:
        """Apply a fault to the next ``times`` connections (all, when None); with
        ``sever``, reset the connections open now."""
        if mode not in MODES or direction not in ("up", "down"):
            raise ValueError(f"unknown fault {mode!r}/{direction!r}")
        with self._lock:
            self._fault = Fault(mode, nbytes, direction, times, status)
            doomed = self._sockets if sever else []
            self._sockets = [] if sever else self._sockets
        for sock in doomed:
            _close(sock, reset=True)

    def _next_fault(self) -> Fault:
        with self._lock:
            self.connections += 1
            fault = self._fault
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = Fault()
            return Fault(fault.mode, fault.nbytes, fault.direction, status=fault.status)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client, self._next_fault()),
                             daemon=True).start()

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
                             daemon=True).start()
            _drain(upstream)
            return
        limit_up = fault.nbytes if fault.mode in ("cut", "reset") and fault.direction == "up" \
            else None
        limit_down = fault.nbytes if fault.mode in ("cut", "reset") and \
            fault.direction == "down" else None
        abort = fault.mode == "reset"
        up = threading.Thread(target=_pump, args=(client, upstream, limit_up, abort),
                              daemon=True)
        up.start()
        _pump(upstream, client, limit_down, abort)
        up.join(timeout=30)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock, reset=False)
            self._sockets.clear()


def _pump(source: socket.socket, target: socket.socket, limit: Optional[int],
          abort: Optional[bool]) -> None:
    """Copy bytes until EOF, or until ``limit`` bytes, then close both sides."""
    sent = 0
    try:
        while True:
            want = 65536 if limit is None else min(65536, limit - sent)
            if want <= 0:
                break
            data = source.recv(want)
            if not data:
                break
            target.sendall(data)
            sent += len(data)
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
