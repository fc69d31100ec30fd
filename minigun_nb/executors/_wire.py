"""The private line between the kernel and one loky worker during a run.

loky's own task path costs about 0.2 ms of kernel CPU per task (a manager thread, a feeder
thread, a fresh cloudpickle pickler per call), which is most of the cost of moving a
thousand trivial items. So a process stage submits one long task per worker, :func:`serve`,
which connects back to the kernel over a local socket and runs the run's chunks as they come
over it. The pool is still the stage's loky pool (its workers, their idle timeout, its crash
detection and replacement); only the chunks travel outside loky's queues.

Frames are ``multiprocessing.connection`` messages. A payload is a pickle (protocol 5) and its
out-of-band buffers, each buffer one message, so a DataFrame's blocks are not copied into a
bigger frame:

- kernel -> worker: ``C`` + buffer count (4 bytes) + pickle, then the buffers (a chunk);
  ``T`` (tear down the job); ``B`` (bye: the task returns and the worker is free again).
- worker -> kernel: ``H`` + pickled (serial, pid) once; ``R`` + seconds spent (un)pickling
  (8 bytes) + buffer count + pickle, then the buffers (a chunk's outcome); ``E`` + a pickled
  exception (the chunk could not run at all, e.g. the job cannot be unpickled here); ``T`` +
  pickled teardown answer.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
from typing import Any

from .base import Payload, dumps

_COUNT = struct.Struct("<I")
_RESULT = struct.Struct("<dI")


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


def send_payload(conn: Any, head: bytes, payload: Payload) -> None:
    meta, bufs = payload if isinstance(payload, tuple) else (payload, [])
    views = [memoryview(b).cast("B") for b in bufs]
    sizes = struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))
    conn.send_bytes(b"".join([head, _COUNT.pack(len(views)), sizes, meta]))
    for v in views:
        conn.send_bytes(v)


def recv_payload(conn: Any, frame: bytes, offset: int) -> tuple[bytes, list[bytearray]]:
    """The pickle and buffers of a payload whose first frame is ``frame``. Buffers arrive in
    writable memory (arrays rebuilt on them can be changed in place, as with plain pickle)."""
    (count,) = _COUNT.unpack_from(frame, offset)
    offset += _COUNT.size
    sizes = struct.unpack_from(f"<{count}Q", frame, offset)
    meta = frame[offset + 8 * count:]
    bufs = []
    for size in sizes:
        buf = bytearray(size)
        if size:
            conn.recv_bytes_into(buf)
        else:
            conn.recv_bytes()
        bufs.append(buf)
    return meta, bufs


def send_chunk(conn: Any, payload: Payload) -> None:
    send_payload(conn, b"C", payload)


def send_result(conn: Any, payload: Payload, moved: float) -> None:
    send_payload(conn, b"R" + struct.pack("<d", moved), payload)


def read_result(conn: Any, frame: bytes) -> tuple[Payload, float]:
    (moved,) = struct.unpack_from("<d", frame, 1)
    return recv_payload(conn, frame, 9), moved


def serve(address: Any, key: bytes, serial: int, token: str, blob: bytes) -> int:
    """Run one run's chunks in this loky worker until the kernel says bye (or goes away).

    Returns the number of chunks served. An exception that stops a chunk from running at all
    goes back as ``E`` for that chunk; the loop goes on.
    """
    from ._chunk import run_task, teardown_task

    try:
        conn = connect(address, key)
    except OSError:  # the run ended before this worker was free to serve it
        return 0
    served = 0
    try:
        conn.send_bytes(b"H" + pickle.dumps((serial, os.getpid())))
        while True:
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                return served
            tag = frame[:1]
            if tag == b"C":
                items = recv_payload(conn, frame, 1)
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
