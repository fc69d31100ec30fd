"""The private line between the kernel and one loky worker during a run.

loky's own task path costs about 0.2 ms of kernel CPU per task (a manager thread, a feeder
thread, a fresh cloudpickle pickler per call), which is most of the cost of moving a
thousand trivial items. So a process stage submits one long task per worker, :func:`serve`,
which connects back to the kernel over a local socket and runs the run's chunks as they come
over it. The pool is still the stage's loky pool (its workers, their idle timeout, its crash
detection and replacement); only the chunks travel outside loky's queues.

Frames are ``multiprocessing.connection`` messages carrying the one framing of
:mod:`minigun_nb.stagefn.wire` (the head and pickle one message, each out-of-band buffer one
message, so a DataFrame's blocks are not copied into a bigger frame):

- kernel -> worker: ``C`` + a payload (a chunk); ``T`` (tear down the job); ``B`` (bye: the
  task returns and the worker is free again).
- worker -> kernel: ``H`` + pickled (serial, pid) once; ``R`` + seconds spent (un)pickling
  (8 bytes) + a payload (a chunk's outcome); ``E`` + a pickled exception (the chunk could not
  run at all, e.g. the job cannot be unpickled here); ``T`` + pickled teardown answer.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
from typing import Any

from ..stagefn.wire import BufferReader, Payload, dumps, read_payload, write_payload

_MOVED = struct.Struct("<d")
_LEN = struct.Struct("!i")
_LONG_LEN = struct.Struct("!Q")


class MessageReader:
    """The reading side of a ``multiprocessing.connection`` line, through one buffer: a read
    takes whatever has arrived (often a whole message with its length, or several), where a
    Connection makes two reads per message. Each read lets go of the GIL and must win it back,
    a thread switch when the kernel's other threads want it: this halves them. A message bigger
    than the buffer is read straight into its own memory (no second copy)."""

    __slots__ = ("fd", "buf", "view", "lo", "hi")

    def __init__(self, fd: int, size: int = 1 << 16) -> None:
        self.fd = fd
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.lo = self.hi = 0  # the unread bytes are buf[lo:hi]

    def _have(self, n: int) -> None:
        """At least ``n`` (at most the buffer's size) unread bytes in the buffer."""
        if self.hi - self.lo >= n:
            return
        if self.lo:  # move what is left to the front
            left = self.hi - self.lo
            self.view[:left] = self.view[self.lo:self.hi]
            self.lo, self.hi = 0, left
        while self.hi < n:
            got = os.readv(self.fd, [self.view[self.hi:]])
            if not got:
                raise EOFError
            self.hi += got

    def _length(self) -> int:
        self._have(4)
        (n,) = _LEN.unpack_from(self.buf, self.lo)
        self.lo += 4
        if n == -1:  # a message of 2 GiB or more
            self._have(8)
            (n,) = _LONG_LEN.unpack_from(self.buf, self.lo)
            self.lo += 8
        return n

    def _into(self, target: memoryview) -> None:
        """Fill ``target`` with the next ``len(target)`` bytes of the line."""
        n = len(target)
        part = min(n, self.hi - self.lo)
        target[:part] = self.view[self.lo:self.lo + part]
        self.lo += part
        while part < n:
            got = os.readv(self.fd, [target[part:]])
            if not got:
                raise OSError("got end of file during message")
            part += got

    def recv_bytes(self) -> bytes | bytearray:
        n = self._length()
        if n <= len(self.buf):
            self._have(n)
            data = self.buf[self.lo:self.lo + n]
            self.lo += n
            return bytes(data)
        big = bytearray(n)
        self._into(memoryview(big))
        return big

    def recv_bytes_into(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        n = self._length()
        if n > len(view):
            raise ValueError(f"a message of {n} bytes for a buffer of {len(view)}")
        self._into(view[:n])
        return n


def connect(address: Any, key: bytes) -> Any:
    """A connection to the kernel's listener (``key`` proves we are the run's worker)."""
    from multiprocessing.connection import Connection

    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        sock.setblocking(True)  # socket.setdefaulttimeout() in the worker: keep it blocking
        conn = Connection(sock.detach())
    finally:
        sock.close()
    conn.send_bytes(key)
    return conn


def reader(conn: Any) -> Any:
    """What reads ``conn``'s messages: a :class:`MessageReader` on its descriptor, or the
    connection itself where ``os.readv`` is missing (Windows: a socket is not a file there)."""
    return MessageReader(conn.fileno()) if hasattr(os, "readv") else conn


def recv_payload(conn: Any, frame: bytes, offset: int) -> Payload:  # conn: or a MessageReader
    """The payload whose first message is ``frame`` (its framing starts at ``offset``)."""
    payload = read_payload(BufferReader(frame, offset, conn.recv_bytes_into))
    if payload is None:
        raise EOFError("a frame ended early")
    return payload


def send_chunk(conn: Any, payload: Payload) -> None:
    write_payload(conn.send_bytes, payload, b"C")


def send_result(conn: Any, payload: Payload, moved: float) -> None:
    write_payload(conn.send_bytes, payload, b"R" + _MOVED.pack(moved))


def read_result(conn: Any, frame: bytes) -> tuple[Payload, float]:
    (moved,) = _MOVED.unpack_from(frame, 1)
    return recv_payload(conn, frame, 1 + _MOVED.size), moved


def serve(address: Any, key: bytes, serial: int, token: str, blob: bytes) -> int:
    """Run one run's chunks in this loky worker until the kernel says bye (or goes away).

    Returns the number of chunks served. An exception that stops a chunk from running at all
    goes back as ``E`` for that chunk; the loop goes on.
    """
    from ..stagefn.worker import run_task, teardown_task

    try:
        conn = connect(address, key)
    except OSError:  # the run ended before this worker was free to serve it
        return 0
    served = 0
    try:
        conn.send_bytes(b"H" + pickle.dumps((serial, os.getpid())))
        lines = reader(conn)
        while True:
            try:
                frame = lines.recv_bytes()
            except (EOFError, OSError):
                return served
            tag = frame[:1]
            if tag == b"C":
                items = recv_payload(lines, frame, 1)
                try:
                    payload, moved = run_task(token, blob, items)
                except BaseException as exc:  # noqa: BLE001 - that chunk's error
                    try:
                        data = dumps(exc)
                    except Exception:  # noqa: BLE001 - an exception that cannot travel
                        data = dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
                    conn.send_bytes(b"E" + data)
                    continue
                del items
                send_result(conn, payload, moved)
                served += 1
            elif tag == b"T":
                conn.send_bytes(b"T" + dumps(teardown_task(token)))
            else:  # B
                return served
    finally:
        conn.close()
