"""Pickles with out-of-band buffers, and the one framing they travel in between processes.

A payload is plain pickle bytes, or ``(bytes, buffers)``: a protocol-5 pickle with its large
binary buffers (numpy arrays, DataFrame blocks) kept out of band, so they are copied once on the
way, not three times. Objects a worker could not import by name (a lambda, a class defined in a
notebook) go by value, with cloudpickle (imported only then). An item or a result that cannot
be pickled costs only its item (:func:`dump_items`, :func:`dump_outcome`).

A frame is ``prefix`` (a tag, chosen by the caller), a head (pickle length, 8 bytes; buffer
count, 4 bytes; each buffer's length, 8 bytes), the pickle, then the buffers as they are.
:func:`write_payload` writes one through any ``send`` that writes a whole bytes-like object (a
pipe, a ``multiprocessing.connection`` message per part); :func:`read_payload` reads one
through any ``read(n)`` that gives exactly ``n`` bytes.

Examples
--------
>>> parts = []
>>> write_payload(parts.append, pack({"a": 1}, oob=True), prefix=b"R")
>>> blob = b"".join(bytes(p) for p in parts)
>>> reader = BufferReader(blob, 1)
>>> unpack(read_payload(reader))
{'a': 1}
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .outcome import ErrorInfo, Outcome, Unpicklable

#: pickled data: plain bytes, or (bytes, buffers) with large binary buffers kept out of band
Payload = Any

def _by_reference_only(data: bytes) -> bool:
    """Whether plain pickle stored a class or function by a name the worker cannot import:
    one defined in ``__main__`` (a notebook cell, a script) or in a module registered with
    ``cloudpickle.register_pickle_by_value``. Such data must go by value (cloudpickle).
    A payload that merely contains the text takes the slower path, harmlessly."""
    if b"__main__" in data:
        return True
    cp = sys.modules.get("cloudpickle.cloudpickle")
    for name in getattr(cp, "_PICKLE_BY_VALUE_MODULES", ()):
        if name.encode() in data:
            return True
    return False


def dumps(obj: Any) -> bytes:
    """pickle (fast) unless the object needs cloudpickle (lambdas, classes defined in a
    notebook: by value, since the worker cannot import them by name)."""
    try:
        data = pickle.dumps(obj, protocol=5)
        if not _by_reference_only(data):
            return data
    except Exception:  # noqa: BLE001 - any pickling failure: try the general pickler
        pass
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=5)


def dumps_oob(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Protocol-5 pickle with out-of-band buffers (cloudpickle when :func:`dumps` would)."""
    bufs: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
        if not _by_reference_only(data):
            return data, bufs
    except Exception:  # noqa: BLE001 - lambdas, classes defined in a notebook
        pass
    import cloudpickle

    bufs = []
    return cloudpickle.dumps(obj, protocol=5, buffer_callback=bufs.append), bufs


def pack(obj: Any, oob: bool) -> Payload:
    return dumps_oob(obj) if oob else dumps(obj)


def unpack(payload: Payload) -> Any:
    if isinstance(payload, tuple):
        meta, bufs = payload
        return pickle.loads(meta, buffers=bufs)
    return pickle.loads(payload)


def payload_size(payload: Payload) -> int:
    if isinstance(payload, tuple):
        meta, bufs = payload
        if not bufs:
            return len(meta)
        return len(meta) + sum(memoryview(b).nbytes for b in bufs)
    return len(payload)


def dump_items(items: Sequence[Any], oob: bool = False) -> Payload:
    """Pickle a chunk of items; an item that cannot be pickled is replaced by a stand-in."""
    try:
        return pack(list(items), oob)
    except Exception:  # noqa: BLE001 - find the culprits, keep the rest
        fixed = []
        for item in items:
            try:
                dumps(item)
                fixed.append(item)
            except Exception as exc:  # noqa: BLE001
                fixed.append(
                    Unpicklable(
                        f"item cannot be pickled to send it to a worker process "
                        f"({type(exc).__name__}: {exc})"
                    )
                )
        return pack(fixed, oob)


# -- an outcome on its way back -------------------------------------------------------------------
def item_ends(oc: Outcome, layout: Any) -> list[int]:
    """Where each item's static emissions end in ``oc.out``."""
    if isinstance(layout, list):
        return layout
    nones, multi = layout
    skip = set(nones) | {e.index for e in oc.errors}
    statics: dict[int, int] = {}
    for idx, _name, _item in oc.dyn:
        statics[idx] = statics.get(idx, 0) - 1
    ends = []
    pos = 0
    for j in range(oc.start, oc.start + oc.n):
        if j in multi:
            pos += multi[j] + statics.get(j, 0)
        elif j not in skip:
            pos += 1
        ends.append(pos)
    return ends


def with_ends(oc: Outcome, layout: Any) -> Outcome:
    """``oc`` with its per-item ``ends`` when it carries routes (``dyn``), so the kernel can
    drop the ``out`` of an item whose route fails; unchanged otherwise (no cost on the fast
    path)."""
    if not oc.dyn or oc.ends:
        return oc
    return oc._replace(ends=item_ends(oc, layout))


def dump_outcome(oc: Outcome, layout: Any, oob: bool = False) -> Payload:
    """Pickle an outcome (with its ``ends`` when it carries routes: :func:`with_ends`); an
    item whose results cannot be pickled becomes an item error."""
    oc = with_ends(oc, layout)
    try:
        return pack(oc, oob)
    except Exception:  # noqa: BLE001 - find the items at fault
        pass
    ends = oc.ends or item_ends(oc, layout)
    failed_idx = {e.index for e in oc.errors}
    out: list[Any] = []
    dyn_by: dict[int, list[tuple[int, str, Any]]] = {}
    for d in oc.dyn:
        dyn_by.setdefault(d[0], []).append(d)
    dyn: list[tuple[int, str, Any]] = []
    kept_ends: list[int] = []
    errors = list(oc.errors)
    done, failed = oc.done, oc.failed
    lo = 0
    for j, hi in enumerate(ends):
        idx = oc.start + j
        values = oc.out[lo:hi]
        routed = dyn_by.get(idx, [])
        lo = hi
        try:
            dumps((values, routed))
        except Exception as exc:  # noqa: BLE001
            if idx not in failed_idx:
                done -= 1
                failed += 1
                errors.append(ErrorInfo(
                    idx,
                    "PicklingError",
                    f"the item's results cannot be pickled to send them back to the kernel "
                    f"({type(exc).__name__}: {exc})",
                    "",
                    None,
                    1,
                ))
        else:
            out.extend(values)
            dyn.extend(routed)
        kept_ends.append(len(out))
    return pack(oc._replace(out=out, dyn=dyn, errors=errors, done=done, failed=failed,
                            ends=kept_ends if dyn else ()), oob)


# -- the framing ---------------------------------------------------------------------------------
_HEAD = struct.Struct("<QI")  # pickle length, buffer count
#: a pickle at least this long is written apart from the head (not copied into it) when the
#: transport is a byte stream
_SPLIT = 1 << 16


def write_payload(send: Callable[[Any], Any], payload: Payload, prefix: bytes = b"",
                  stream: bool = False) -> None:
    """Write one frame: ``send`` gets the prefix, head and pickle as one part (``stream``: a
    long pickle as a part of its own), then each buffer as a part of its own, uncopied."""
    meta, bufs = payload if isinstance(payload, tuple) else (payload, [])
    views = [memoryview(b).cast("B") for b in bufs]
    head = b"".join([prefix, _HEAD.pack(len(meta), len(views)),
                     struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))])
    if stream and len(meta) >= _SPLIT:
        send(head)
        send(meta)
    else:
        send(head + meta)
    for v in views:
        send(v)


def read_payload(read: Callable[[int], Any]) -> Payload | None:
    """Read one frame written by :func:`write_payload` (after its prefix): ``(pickle,
    buffers)``, or None when the data ended first. Buffers arrive in writable memory (arrays
    rebuilt on them can be changed in place, as with plain pickle)."""
    head = read(_HEAD.size)
    if head is None:
        return None
    meta_len, count = _HEAD.unpack(head)
    sizes: Sequence[int] = ()
    if count:
        raw = read(8 * count)
        if raw is None:
            return None
        sizes = struct.unpack(f"<{count}Q", raw)
    meta = read(meta_len)
    if meta is None:
        return None
    bufs = []
    for size in sizes:
        buf = read(size)
        if buf is None:
            return None  # the writer died mid-frame
        bufs.append(buf)
    return meta, bufs


def write_all(fd: int, data: Any) -> None:
    """Write all of ``data`` to the file descriptor ``fd`` (a pipe)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytearray | None:
    """``n`` bytes from ``fd``, read in place; None at end of file before that many arrived."""
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = os.readv(fd, [view[pos:]])
        if not got:
            return None
        pos += got
    return buf


class BufferReader:
    """``read(n)`` over one message already received (``data`` from ``offset``), then, with
    ``recv_into``, over the messages that follow, one a buffer (``multiprocessing.connection``:
    ``conn.recv_bytes_into``)."""

    __slots__ = ("data", "pos", "recv_into")

    def __init__(self, data: bytes, offset: int = 0,
                 recv_into: Callable[[bytearray], Any] | None = None) -> None:
        self.data = data
        self.pos = offset
        self.recv_into = recv_into

    def __call__(self, n: int) -> Any:
        if self.pos < len(self.data):
            part = self.data[self.pos:self.pos + n]
            self.pos += n
            return part
        if self.recv_into is None:
            return bytearray() if n == 0 else None
        buf = bytearray(n)
        self.recv_into(buf)  # an empty message for an empty buffer
        return buf
