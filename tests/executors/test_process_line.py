"""The private line of a process stage: the buffered reader of ``multiprocessing.connection``
messages both ends use (:class:`process_link.MessageReader`), and the result threads that
drive the stage themselves (``reporter_drives``)."""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from multiprocessing.connection import Connection

import cloudpickle
import pytest

import minigun_nb as mg
from minigun_nb.executors import process_link
from minigun_nb.executors.process_link import MessageReader
from minigun_nb.runtime import dispatch

pytestmark = pytest.mark.timeout(120)
# functions of this module travel by value, as a notebook's do (workers never import tests)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def line():
    a, b = socket.socketpair()
    writer = Connection(a.detach())
    yield writer, b
    writer.close()
    b.close()


def _count_reads(monkeypatch):
    calls = []
    real = os.readv

    def readv(fd, buffers):
        calls.append(fd)
        return real(fd, buffers)

    monkeypatch.setattr(process_link.os, "readv", readv)
    return calls


def test_messages_sent_together_are_read_with_one_read(line, monkeypatch):
    writer, raw = line
    messages = [bytes([k]) * (k * 37) for k in range(10)]  # an empty one first
    for m in messages:
        writer.send_bytes(m)
    calls = _count_reads(monkeypatch)
    reader = MessageReader(raw.fileno())
    assert [reader.recv_bytes() for _ in messages] == messages
    assert len(calls) == 1  # a Connection makes two reads per message: twenty


def test_a_message_bigger_than_the_buffer_and_one_into_a_given_buffer(line):
    writer, raw = line
    big = os.urandom(300_000)
    into = os.urandom(50_000)

    def send():
        writer.send_bytes(b"head")
        writer.send_bytes(big)
        writer.send_bytes(into)
        writer.send_bytes(b"tail")

    t = threading.Thread(target=send)
    t.start()  # the socket buffer cannot hold it all: the reads interleave with the writes
    reader = MessageReader(raw.fileno(), size=4096)
    assert reader.recv_bytes() == b"head"
    assert reader.recv_bytes() == big
    target = bytearray(len(into))
    assert reader.recv_bytes_into(target) == len(into) and target == into
    assert reader.recv_bytes() == b"tail"
    t.join(10)


def test_the_long_length_form_and_a_buffer_too_small(line):
    writer, raw = line
    w = socket.socket(fileno=os.dup(writer.fileno()))
    w.sendall(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    w.sendall(struct.pack("!i", 8) + b"12345678")
    w.close()
    reader = MessageReader(raw.fileno())
    assert reader.recv_bytes() == b"hello"
    with pytest.raises(ValueError, match="8 bytes for a buffer of 4"):
        reader.recv_bytes_into(bytearray(4))


def test_the_end_of_the_line_between_messages_and_inside_one(line):
    writer, raw = line
    writer.send_bytes(b"whole")
    w = socket.socket(fileno=os.dup(writer.fileno()))
    w.sendall(struct.pack("!i", 100) + b"only part")
    w.close()
    writer.close()
    reader = MessageReader(raw.fileno(), size=16)
    assert reader.recv_bytes() == b"whole"
    with pytest.raises((EOFError, OSError)):
        reader.recv_bytes()  # 100 bytes announced, 9 came
    a, b = socket.socketpair()
    a.close()
    with pytest.raises(EOFError):
        MessageReader(b.fileno()).recv_bytes()
    b.close()


def _threads_calling(monkeypatch, cls, name):
    """The names of the threads that call ``cls.name`` from now on, in call order."""
    names = []
    real = getattr(cls, name)

    def recording(self, *args, **kwargs):
        names.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, recording)
    return names


# -- result threads that drive the stage ---------------------------------------------------------
def test_the_result_threads_route_outcomes_and_take_the_next_chunks(monkeypatch):
    """With a process stage the outcomes are handled, and the next chunks submitted, mostly on
    the links' reader threads rather than the driver: nothing lost, order kept."""
    where = _threads_calling(monkeypatch, dispatch.PooledStage, "_on_outcome")
    pipe = mg.Pipeline("reporter-drives")

    @pipe.producer
    def numbers():
        yield from range(20_000)

    pipe.processor(abs, name="double", backend="process", workers=2, chunk_size=100,
                   ordered=True)
    result = pipe.run(display="none")
    assert result.ok and result.outputs == list(range(20_000))
    readers = sum(1 for name in where if name.endswith("-reader"))
    assert len(where) >= 200 and readers > len(where) // 2, (readers, len(where))


def test_an_internal_error_on_a_result_thread_fails_the_run_and_does_not_hang(monkeypatch):
    def broken(self, span, oc):
        if threading.current_thread().name.endswith("-reader"):
            raise RuntimeError("internal: broken on a result thread")
        return real(self, span, oc)

    real = dispatch.PooledStage._on_outcome
    monkeypatch.setattr(dispatch.PooledStage, "_on_outcome", broken)
    pipe = mg.Pipeline("reporter-breaks")

    @pipe.producer
    def numbers():
        yield from range(5_000)

    pipe.processor(abs, name="abs", backend="process", workers=2, chunk_size=50)
    with pytest.raises(RuntimeError, match="internal error.*broken on a result thread"):
        pipe.run(display="none")


def test_a_put_that_finds_the_stage_idle_takes_and_submits_on_the_putting_thread(monkeypatch):
    """The channel's listener: the producer's thread takes and submits the chunks it just
    delivered (no hop to the driver), while the outcomes are still routed by result threads
    or the driver, never by the producer (it could block on a full queue downstream)."""
    from minigun_nb.executors.process import ProcessExecutor

    submitted = _threads_calling(monkeypatch, ProcessExecutor, "submit")
    routed = _threads_calling(monkeypatch, dispatch.PooledStage, "_on_outcome")
    pipe = mg.Pipeline("put-drives")

    @pipe.producer
    def slow():
        for i in range(60):
            if i % 10 == 0:
                time.sleep(0.02)  # the stage runs dry: its next chunk comes with a put
            yield i

    pipe.processor(abs, name="abs", backend="process", workers=2, chunk_size=5)
    result = pipe.run(display="none")
    assert result.ok and sorted(result.outputs) == list(range(60))
    assert any("-slow-" in name for name in submitted), submitted
    assert not any("-slow-" in name for name in routed), routed


def _slow_grow(b):
    time.sleep(0.005)
    return b * 6  # a result bigger than the worker's socket buffer holds


def test_a_reader_never_blocks_on_a_write_to_its_own_busy_worker(monkeypatch):
    """With a small socket buffer (macOS has 8 KiB) a chunk the reader wrote to its own worker
    would wait for that worker, which waits to write its result to that reader: such chunks go
    through the link's sender thread."""
    from minigun_nb.executors import process

    real_init = process._Link.__init__

    def small_buffer(self, ex, conn, serial, pid, send_buffer=0):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        real_init(self, ex, conn, serial, pid,
                  sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        sock.close()

    monkeypatch.setattr(process._Link, "__init__", small_buffer)
    pipe = mg.Pipeline("small-socket-buffer")

    @pipe.producer
    def blobs():
        for i in range(60):
            yield bytes([i]) * 60_000  # under the 64 KB the sender thread takes anyway

    pipe.processor(_slow_grow, name="grow", backend="process", workers=1, chunk_size=1)
    result = pipe.run(display="none")
    assert result.ok and len(result.outputs) == 60


def _crash_some(x):
    if x % 7 == 3:
        os._exit(3)
    return x


def test_a_loky_callback_thread_never_drives_the_stage(monkeypatch):
    """After a crash loky's own threads fail the chunks no worker will take; they wake the
    driver instead of routing and submitting (a loky thread must not replace its own pool)."""
    threads = _threads_calling(monkeypatch, dispatch.PooledStage, "_handle")
    pipe = mg.Pipeline("crashing-workers")

    @pipe.producer
    def numbers():
        yield from range(40)

    pipe.processor(_crash_some, name="crashy", backend="process", workers=3, chunk_size=4,
                   crash_retries=1)
    result = pipe.run(display="none")
    assert sorted(result.outputs) == [x for x in range(40) if x % 7 != 3]
    assert len(result.errors) == len([x for x in range(40) if x % 7 == 3])
    assert threads and all(name.startswith("mg-") for name in threads), set(threads)
