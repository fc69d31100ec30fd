"""``backend="process"``: a loky process pool private to each stage, kept warm between runs.

loky's process-wide reusable executor is a singleton that is replaced whenever it is asked for
other arguments, so it cannot serve several stages: each stage owns a ``ProcessPoolExecutor``,
kept warm between runs and replaced when a worker died (:mod:`.process_pool`).

During a run each worker runs one long loky task (``process_link.serve``) that connects back over
a private local socket and takes the run's chunks from it; loky still owns the processes (their
start, idle timeout, crash detection, replacement). Per chunk this costs a pickle and a socket
write, not loky's ~0.2 ms of manager and feeder threads. A worker that dies ends its
connection: the chunks it held fail as a crash (:class:`WorkerDied`, with loky's exit codes),
and the next submit starts serve tasks on a replaced pool. At the end of the run the kernel
says bye and the workers are free (and warm) again.

Chunks are pickled by us, with protocol 5 and out-of-band buffers (a DataFrame's blocks are
copied once on the way, not three times), so an item or a result that cannot be pickled costs
only that item. The job (function, hooks, options) travels once per worker per run, with its
serve task.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from ..stagefn.outcome import TIMEOUT_EXIT, ErrorInfo, Job, Outcome, TaskCancelled, WorkerDied
from ..stagefn.sampling import running_mean
from ..stagefn.wire import dump_items, payload_size, unpack
from . import process_link
from .base import ExecutorSpec, may_drive_here
from .process_pool import get_pool

log = logging.getLogger("minigun_nb")
#: a chunk bigger than this is written by its link's sender thread (a socket buffer holds
#: about this much, so a smaller one never blocks the driver while its worker is busy)
BIG_PAYLOAD = 64 << 10
#: the control frame that runs the job's teardown in a worker
_TEARDOWN = b"T"
#: how long a worker may take to say who it is once connected
HANDSHAKE_SECONDS = 5.0


def _recv_frame(sock: socket.socket, limit: int, deadline: float) -> bytes:
    """One ``multiprocessing.connection`` message of at most ``limit`` bytes, all of it by
    ``deadline`` (a Connection would read its descriptor with no timeout at all)."""
    (size,) = struct.unpack("!i", _recv_exactly(sock, 4, deadline))
    if not 0 <= size <= limit:
        raise ValueError(f"a handshake frame of {size} bytes")
    return _recv_exactly(sock, size, deadline)


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the handshake took too long")
        sock.settimeout(left)  # a client that trickles a byte at a time meets the deadline too
        part = sock.recv(n - len(data))
        if not part:
            raise EOFError("the connection ended during the handshake")
        data += part
    return data


class _Task:
    """A chunk on its way to a worker and back."""

    __slots__ = ("fut", "blob", "report", "moved", "size", "big")

    def __init__(self, fut: Future[None], blob: Any, report: Callable[[Outcome], None],
                 moved: float, size: int) -> None:
        self.fut = fut
        self.blob = blob
        self.report = report
        self.moved = moved
        self.size = size
        self.big = size > BIG_PAYLOAD


class _Link:
    """One worker serving this run's chunks: the tasks it holds, in the order they were sent
    (its answers come back in that order), a reader thread, and a sender thread for the
    payloads that could block the driver."""

    def __init__(self, ex: ProcessExecutor, conn: Any, serial: int, pid: int,
                 send_buffer: int = 0) -> None:
        self.ex = ex
        self.conn = conn
        self.serial = serial
        self.pid = pid
        self.cond = threading.Condition()
        self.inflight: deque[_Task] = deque()
        self.outbox: deque[_Task | bytes | None] = deque()  # None: say bye; bytes: control
        self.sending = False
        self.alive = True
        self.served = 0
        self.replies: deque[bytes] = deque()
        # the reader may write a chunk to its own worker only when the socket surely takes it
        # at once (with the one before it): a write that waited for the worker, while the
        # worker waits to write a result to this very reader, would never end
        self.own_direct = send_buffer // 4
        name = f"mg-{ex.name}-w{pid}"
        self.reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self.sender = threading.Thread(target=self._send_loop, name=f"{name}-sender",
                                       daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.sender.start()

    # -- sending -------------------------------------------------------------------------------
    def put(self, task: _Task | bytes | None, direct: bool) -> bool:
        """Send ``task`` (in order after what was sent before; None says bye, bytes are a
        control frame). ``direct``: write it on the calling thread when nothing is being sent
        and it is small (a socket takes it at once), which saves a thread hop; otherwise the
        sender thread writes it. False when the connection has ended (the task was not
        taken: place it elsewhere)."""
        with self.cond:
            if not self.alive:  # its reader already failed what it held: not this one
                return False
            if isinstance(task, _Task):
                self.inflight.append(task)
                direct = direct and not task.big and (
                    task.size <= self.own_direct or threading.get_ident() != self.reader.ident)
            else:
                direct = False
            if not direct or self.sending or self.outbox:
                self.outbox.append(task)
                self.cond.notify_all()
                return True
            self.sending = True
        try:
            self._write(task)
        finally:
            with self.cond:
                self.sending = False
                if self.outbox:
                    self.cond.notify_all()
        return True

    def _write(self, task: _Task | bytes | None) -> None:
        try:
            if task is None:
                self.conn.send_bytes(b"B")
            elif isinstance(task, bytes):
                self.conn.send_bytes(task)
            else:
                process_link.send_chunk(self.conn, task.blob)
        except OSError:
            pass  # the worker is gone: the reader sees it and fails what it held

    def _send_loop(self) -> None:
        while True:
            with self.cond:
                while self.alive and (self.sending or not self.outbox):
                    self.cond.wait()
                if not self.alive:
                    return
                task = self.outbox.popleft()
                self.sending = True
            self._write(task)
            with self.cond:
                self.sending = False
                self.cond.notify_all()
            if task is None:
                return

    def take_unsent(self) -> list[_Task]:
        """Tasks not written yet (cancel): they leave this link."""
        with self.cond:
            unsent = [t for t in self.outbox if isinstance(t, _Task)]
            self.outbox = deque(t for t in self.outbox if not isinstance(t, _Task))
            for t in unsent:
                self.inflight.remove(t)
            return unsent

    # -- receiving -----------------------------------------------------------------------------
    def _read(self) -> None:
        may_drive_here()  # a report from here may route it and submit the next chunk
        conn, ex = self.conn, self.ex
        lines = process_link.reader(conn)
        try:
            while True:
                try:
                    frame = lines.recv_bytes()
                    tag = frame[:1]
                    if tag == b"R":
                        payload, moved = process_link.read_result(lines, frame)
                    elif tag == b"T":
                        with self.cond:
                            self.replies.append(frame[1:])
                            self.cond.notify_all()
                        continue
                except (EOFError, OSError):
                    break
                with self.cond:
                    task = self.inflight.popleft()
                    self.served += 1
                if ex.waiting:  # a slot is free here: the next waiting chunk (sender thread)
                    ex._dispatch()
                if tag == b"R":
                    ex._answer(task, payload, moved)
                else:  # E: the chunk could not run there at all
                    try:
                        exc = pickle.loads(frame[1:])
                    except Exception as err:  # noqa: BLE001
                        exc = err
                    task.fut.set_exception(exc)
        finally:
            with self.cond:
                self.alive = False
                lost = list(self.inflight)
                self.inflight.clear()
                self.outbox.clear()
                self.cond.notify_all()
            conn.close()
            ex._lost(self, lost)


class ProcessExecutor:
    """Chunks go to the stage's loky workers over one private connection each (process_link)."""

    depth = 2
    isolates_crashes = False
    target_seconds = 0.02
    moves_bytes = True
    reporter_drives = True

    def __init__(self, spec: ExecutorSpec) -> None:
        self.name = spec.path
        self.workers = spec.workers
        self.pool = get_pool(spec.path, spec.workers, spec.worker_idle_timeout,
                             owner=spec.pipeline)
        self.job: Job | None = None
        self.blob = b""
        self.lock = threading.Lock()
        self.links: list[_Link] = []
        self.waiting: deque[_Task] = deque()  # no worker connected to take them yet
        self.serves: dict[int, Any] = {}  # serial -> the loky future of its serve task
        self.starting = 0  # serve tasks submitted and not connected yet
        self.serial = 0
        self.closed = False  # no more chunks: a worker connecting now is sent away
        self.stopped = False  # the acceptor ends
        self.death = ""  # what loky said of the last pool that broke
        self.item_bytes = 0.0  # pickled bytes per item (items or results, the larger)
        self.listener: socket.socket | None = None
        self.address: Any = None
        self.key = os.urandom(16)
        self._tmpdir: str | None = None
        self.extra = dict(spec.log_extra)  # every log record names its run and stage

    # -- the run's lifetime --------------------------------------------------------------------
    def open(self, job: Job) -> None:
        import cloudpickle

        self.job = job
        self.blob = cloudpickle.dumps(job)
        if hasattr(socket, "AF_UNIX"):
            self._tmpdir = tempfile.mkdtemp(prefix="mg-")
            self.address = os.path.join(self._tmpdir, "s")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:  # no Unix sockets (Windows): loopback TCP
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.address = ("127.0.0.1", 0)
        sock.bind(self.address)
        if not isinstance(self.address, str):
            self.address = sock.getsockname()
        sock.listen(max(8, 2 * self.workers))
        sock.settimeout(0.2)
        self.listener = sock
        threading.Thread(target=self._accept, name=f"mg-{self.name}-accept", daemon=True).start()

    def _accept(self) -> None:
        from multiprocessing.connection import Connection

        sock = self.listener
        assert sock is not None
        while not self.stopped:
            try:
                raw, _ = sock.accept()  # a blocking socket (the listener's timeout is not kept)
            except TimeoutError:
                continue
            except OSError:
                return
            # a connection that says nothing must not stall the acceptor: the handshake has a
            # deadline, then the socket is blocking (socket.setdefaulttimeout() aside)
            deadline = time.monotonic() + HANDSHAKE_SECONDS
            try:
                if _recv_frame(raw, 64, deadline) != self.key:
                    raise ValueError("not one of ours")
                serial, pid = pickle.loads(_recv_frame(raw, 256, deadline)[1:])
                raw.setblocking(True)
                send_buffer = raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            except Exception:  # noqa: BLE001 - not one of ours, silent, or it died on the way
                raw.close()
                continue
            conn = Connection(raw.detach())
            link = _Link(self, conn, serial, pid, send_buffer)
            log.debug("worker process %d connected to %s", pid, self.name, extra=self.extra)
            with self.lock:
                self.starting = max(0, self.starting - 1)
                if self.closed:
                    late = True
                else:
                    late = False
                    self.links.append(link)
            link.start()
            if late:
                link.put(None, direct=False)
                continue
            self._dispatch()  # on the sender thread: the acceptor must not block

    def _ensure_workers(self) -> None:
        """Serve tasks for the workers that are not connected (first use, after a crash)."""
        with self.lock:  # called for every chunk: the common case returns here
            missing = self.workers - len(self.links) - self.starting
            if missing <= 0 or self.closed:
                return
            self.starting += missing
            serials = list(range(self.serial, self.serial + missing))
            self.serial += missing
        from loky.process_executor import BrokenProcessPool

        assert self.job is not None
        for serial in serials:
            try:
                fut = self.pool.executor(self.extra).submit(
                    process_link.serve, self.address, self.key, serial, self.job.token, self.blob)
            except (BrokenProcessPool, RuntimeError) as exc:
                self._serve_ended(serial, None, exc)
                continue
            with self.lock:
                self.serves[serial] = fut
            fut.add_done_callback(partial(self._serve_ended, serial))

    def _serve_ended(self, serial: int, fut: Any, exc: BaseException | None = None) -> None:
        if fut is not None and not fut.cancelled():
            exc = fut.exception()
        if exc is not None:
            self.death = str(exc)
        with self.lock:
            connected = any(link.serial == serial for link in self.links)
            if connected:
                return  # its reader sees the end of the connection
            if fut is not None and self.serves.pop(serial, None) is None:
                return  # already counted
            self.starting = max(0, self.starting - 1)
        self._dispatch()  # if no worker will come for the waiting chunks: a crash (re-run)

    def _died(self, exc: BaseException | None = None) -> WorkerDied:
        text = str(exc) if exc is not None else self.death
        first = text.splitlines()[0] if text else "the connection to it ended"
        tail = f" {text.strip().splitlines()[-1]}" if "exit codes" in text else ""
        return WorkerDied(f"a worker process of the pool died: {first}{tail}",
                          timeout=f"EXIT({TIMEOUT_EXIT})" in text)

    def _lost(self, link: _Link, lost: list[_Task]) -> None:
        """A connection ended: the tasks it held die with its worker."""
        with self.lock:
            if link in self.links:
                self.links.remove(link)
            fut = self.serves.pop(link.serial, None)
        log.debug("connection to worker process %d of %s ended", link.pid, self.name,
                  extra=self.extra)
        self._dispatch()  # the other workers take the waiting chunks (or they fail: re-run)
        if not lost:
            return
        exc: BaseException | None = None
        if fut is not None:
            try:  # loky says why its worker died (exit codes) a moment after the socket
                exc = fut.exception(timeout=30)
            except BaseException as err:  # noqa: BLE001 - timeout, cancelled
                exc = err
        for task in lost:
            task.fut.set_exception(self._died(exc))

    # -- chunks ----------------------------------------------------------------------------------
    def submit(self, items: Sequence[Any], report: Callable[[Outcome], None]) -> Future[None]:
        fut: Future[None] = Future()
        fut.set_running_or_notify_cancel()
        t = time.perf_counter()
        blob = dump_items(items, oob=True)
        moved = time.perf_counter() - t
        size = payload_size(blob)
        if items:
            self.item_bytes = running_mean(self.item_bytes, size / len(items))
        self._ensure_workers()
        self._place(_Task(fut, blob, report, moved, size), direct=True)
        return fut

    def _place(self, task: _Task, direct: bool) -> None:
        with self.lock:
            self.waiting.append(task)
        self._dispatch(direct)

    def _dispatch(self, direct: bool = False) -> None:
        """Hand waiting chunks, oldest first, to the live worker holding the fewest, at most
        ``depth`` each: a worker that connects first does not take the chunks meant for the
        one still starting. With no worker live or coming they fail as a crash (re-run)."""
        while True:
            with self.lock:
                if not self.waiting:
                    return
                live = [link for link in self.links if link.alive]
                if not live:
                    if self.starting or self.closed:  # a worker is coming: it takes them
                        return
                    stranded = list(self.waiting)  # none is coming (its serve task failed)
                    self.waiting.clear()
                    break
                link = min(live, key=lambda lk: len(lk.inflight))
                if len(link.inflight) >= self.depth:
                    return  # all busy: the next answer hands out the next chunk
                task = self.waiting.popleft()
            if not link.put(task, direct):
                # that connection ended between the choice and the put: choose again
                with self.lock:
                    self.waiting.appendleft(task)
        for task in stranded:
            task.fut.set_exception(self._died())

    def _answer(self, task: _Task, payload: Any, remote_moved: float) -> None:
        try:
            t = time.perf_counter()
            oc = unpack(payload)
            oc = oc._replace(cost=task.moved + remote_moved + time.perf_counter() - t)
            if oc.n:
                per = payload_size(payload) / oc.n
                if per > self.item_bytes:
                    self.item_bytes = per
            task.report(oc)
        except BaseException as err:  # noqa: BLE001 - handed to the driver
            task.fut.set_exception(err)
            return
        task.fut.set_result(None)

    def cancel(self) -> None:
        with self.lock:
            dropped = list(self.waiting)
            self.waiting.clear()
            links = list(self.links)
        for link in links:
            dropped.extend(link.take_unsent())
        for task in dropped:
            task.fut.set_exception(TaskCancelled())

    def finish(self) -> list[ErrorInfo]:
        """Teardown in every worker that ran a chunk of this run."""
        job = self.job
        if job is None or (job.setup is None and job.teardown is None):
            return []
        with self.lock:
            links = [link for link in self.links if link.alive and link.served]
        errors: list[ErrorInfo] = []
        for link in links:
            link.put(_TEARDOWN, direct=False)  # after anything still being written
        deadline = time.monotonic() + 60
        for link in links:
            with link.cond:
                while not link.replies and link.alive and time.monotonic() < deadline:
                    link.cond.wait(0.1)
                reply = link.replies.popleft() if link.replies else None
            if reply is not None:
                _pid, status, errs = pickle.loads(reply)
                if status == "torn":
                    errors.extend(errs)
        return errors

    def close(self) -> None:
        with self.lock:
            self.closed = True
            links = list(self.links)
            serves = dict(self.serves)
        for link in links:
            link.put(None, direct=False)  # bye, after anything still queued
        for fut in serves.values():  # the workers are free when their serve task returned
            if fut.cancel():  # never started: nothing to wait for
                continue
            # one that connected says bye now; one that did not is a worker still starting
            # (the pool is this run's alone): it connects, is sent away and returns
            try:
                fut.result(timeout=30)
            except BaseException:  # noqa: BLE001 - a worker that died is the pool's business
                pass
        self.stopped = True
        if self.listener is not None:
            self.listener.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self.pool.release()


__all__ = ["ProcessExecutor"]
