"""The sockets TLSServer accepts on Linux: timeouts kept by the kernel, not by poll().

A Python socket with a timeout polls before every read and write, and ``settimeout``
toggles O_NONBLOCK with an ioctl each time it is called (a TLSSocket's handshake
deadline calls it before every read): two system calls more per read, each of which
releases the GIL -- and with other connections' threads waiting for it, each release is
a hand-over between threads. ``ServedSocket`` is a *blocking* socket that keeps the
timeout itself and has the kernel enforce it on reads (SO_RCVTIMEO, set only when it
changed: ``setsockopt`` keeps the GIL), and sends without waiting first (MSG_DONTWAIT),
falling back to Python's own timed ``sendall`` when the peer's window is full. To its
user it is a socket with a timeout: ``gettimeout()`` says what was set, a read or write
that outlasts it raises TimeoutError("timed out"), and ``settimeout(0.0)`` /
``setblocking(False)`` make it really non-blocking.

(Only ``recv``, ``recv_into``, ``send`` and ``sendall`` honour the timeout: the calls a
TLSSocket, a handler and ``makefile()`` make.)
"""

from __future__ import annotations

import socket
import struct
from typing import Any

#: SO_RCVTIMEO takes a struct timeval; (0, 0) is "no timeout".
_TIMEVAL = struct.Struct("@ll")
_NO_TIMEOUT = _TIMEVAL.pack(0, 0)
#: A longer timeout is no different in practice, and keeps the struct's fields in range.
_MAX_TIMEOUT = 10.0**9
# (Plain ints: an IntFlag operand makes "flags | MSG_DONTWAIT" Python code, in enum.)
_SOL_SOCKET, _SO_RCVTIMEO = int(socket.SOL_SOCKET), int(socket.SO_RCVTIMEO)
_DONTWAIT = int(socket.MSG_DONTWAIT)
# (The base class's methods, called directly: cheaper than super() on every call.)
_base = socket.socket
_recv, _recv_into, _send = _base.recv, _base.recv_into, _base.send
_settimeout, _setsockopt = _base.settimeout, _base.setsockopt


def _timeval(timeout: float | None) -> bytes:
    """``timeout`` as SO_RCVTIMEO takes it, rounded up to the next microsecond (never
    (0, 0), which would mean no timeout at all)."""
    if timeout is None:
        return _NO_TIMEOUT
    timeout = min(timeout, _MAX_TIMEOUT)
    seconds = int(timeout)
    micros = int((timeout - seconds) * 1e6) + 1
    return _TIMEVAL.pack(seconds + 1, 0) if micros == 1_000_000 else _TIMEVAL.pack(
        seconds, micros)


class ServedSocket(socket.socket):
    """A connected stream socket whose timeout the kernel keeps (see the module)."""

    __slots__ = ("_applied", "_family", "_timeout")

    def __init__(self, family: socket.AddressFamily, type: int, proto: int, fileno: int
                 ) -> None:
        super().__init__(family, type, proto, fileno)
        self._family = family
        self._timeout: float | None = super().gettimeout()
        if self._timeout:  # (socket.setdefaulttimeout was called): blocking instead
            _settimeout(self, None)
        self._applied: float | None = None  # the SO_RCVTIMEO in force (None: none)

    @property
    def family(self) -> socket.AddressFamily:
        """(As given, not converted to an enum member again at every look.)"""
        return self._family

    def settimeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if not value > 0.0:
                if value != 0.0:  # (negative, or NaN)
                    raise ValueError("Timeout value out of range")
                _settimeout(self, 0.0)  # non-blocking: really
                self._timeout = 0.0
                return
        if self._timeout == 0.0:
            _settimeout(self, None)  # back from non-blocking
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        timeout = self._timeout
        if timeout != self._applied and timeout != 0.0:
            _setsockopt(self, _SOL_SOCKET, _SO_RCVTIMEO, _timeval(timeout))
            self._applied = timeout
        try:
            return _recv(self, bufsize, flags)
        except BlockingIOError:
            if timeout:  # SO_RCVTIMEO passed
                raise TimeoutError("timed out") from None
            raise

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        timeout = self._timeout
        if timeout != self._applied and timeout != 0.0:
            _setsockopt(self, _SOL_SOCKET, _SO_RCVTIMEO, _timeval(timeout))
            self._applied = timeout
        try:
            return _recv_into(self, buffer, nbytes, flags)
        except BlockingIOError:
            if timeout:
                raise TimeoutError("timed out") from None
            raise

    def send(self, data: Any, flags: int = 0) -> int:
        timeout = self._timeout
        if not timeout:  # (non-blocking, or blocking for ever)
            return _send(self, data, flags)
        try:
            return _send(self, data, flags | _DONTWAIT)
        except BlockingIOError:
            pass
        # The peer's window is full: wait as a socket with this timeout waits.
        _settimeout(self, timeout)
        try:
            return _send(self, data, flags)
        finally:
            _settimeout(self, None)

    def sendall(self, data: Any, flags: int = 0) -> None:
        timeout = self._timeout
        if not timeout:  # (non-blocking, or blocking for ever)
            super().sendall(data, flags)
            return
        try:
            sent = _send(self, data, flags | _DONTWAIT)
        except BlockingIOError:
            sent = 0
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if sent == size:
            return
        # The peer's window is full: the rest as a socket with this timeout sends it
        # (the timeout bounds the whole rest, as it does sendall).
        _settimeout(self, timeout)
        try:
            super().sendall(memoryview(data).cast("B")[sent:], flags)
        finally:
            _settimeout(self, None)
