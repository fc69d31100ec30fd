"""The terminal HUD (``display="hud"``, ``minigun-nb run --hud``): a full-screen rich dashboard.

What it shows (SPEC §13; drawn by :mod:`minigun_nb.display.hudview`): a header (pipeline, run
id, status, elapsed, totals, the keys), the DAG drawn as columns of the shared layout's layers
with arrows between them, a stage table (status, in/out, failed, items/s, busy %, queue
depth/size, P50, P99), the hint, and the last errors. ``q`` stops the run, draining (a second
``q`` cancels), and the HUD leaves the screen once the run has ended; space freezes and
resumes the screen. At most 10 refreshes a second.

The terminal is put back on every exit path: the run ends (``on_end``), the display raises
(it is detached by its follower), Ctrl-C (the run drains and ends), ``SIGTERM`` and interpreter
exit (an ``atexit`` hook). While the HUD is up, what Python code writes to ``sys.stdout`` and
``sys.stderr`` (log handlers on them included) is held and written out after the screen is
left, so it does not scribble over the dashboard.
"""

from __future__ import annotations

import atexit
import io
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live

from . import isatty
from .hudview import Dag, render_screen

__all__ = ["HudDisplay"]

#: the shortest time between two refreshes (10 Hz) and the longest while the run is quiet
MIN_INTERVAL = 0.1
IDLE_INTERVAL = 1.0
_HELD_LIMIT = 1 << 20  # characters of output held while the HUD is up; the oldest go first


# -- the display --------------------------------------------------------------------------

def _error_records(handle: Any, keep: int = 100) -> tuple[list[Any], int]:
    """The last ``keep`` error records of the run so far, and how many there are in all.

    The runtime only appends to ``handle._run.errors``; taking its length and a slice is safe
    from another thread.
    """
    records = getattr(getattr(handle, "_run", None), "errors", None) or []
    total = len(records)
    return list(records[max(0, total - keep):total]), total


def _stopping(handle: Any) -> bool:
    run = getattr(handle, "_run", None)
    return bool(getattr(run, "stopping", False))


class _Held(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr while the HUD is up; written out afterwards."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
            self._size += len(text)
            while self._size > _HELD_LIMIT and len(self._parts) > 1:
                old = self._parts.pop(0)
                self._size -= len(old)
                self.dropped += len(old)
        return len(text)

    def release(self) -> None:
        with self._lock:
            parts, self._parts, self._size = self._parts, [], 0
        if self.dropped:
            parts.insert(0, f"[minigun_nb HUD: {self.dropped} earlier characters of output "
                            "dropped]\n")
        try:
            self.real.write("".join(parts))
            self.real.flush()
        except (OSError, ValueError):  # the terminal went away: nothing to show it on
            pass


#: HUDs on screen now: the atexit and SIGTERM hooks put each one's terminal back
_ACTIVE: set[HudDisplay] = set()
_HOOKS = {"atexit": False, "sigterm": False}


def _restore_all() -> None:
    for hud in list(_ACTIVE):
        hud._emergency_restore()


def _on_sigterm(signum: int, frame: Any) -> None:
    _restore_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM, as without the HUD


def _install_hooks() -> None:
    if not _HOOKS["atexit"]:
        atexit.register(_restore_all)
        _HOOKS["atexit"] = True
    if _HOOKS["sigterm"] or threading.current_thread() is not threading.main_thread():
        return
    try:  # only when nobody else handles SIGTERM: a handler of the caller's wins
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _HOOKS["sigterm"] = True
    except (ValueError, OSError):
        pass


class HudDisplay:
    """The full-screen terminal dashboard of one run (``display="hud"``).

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw; default a console on the real ``sys.stdout``, which must be a
        terminal (else the HUD prints a note on stderr and only the summary at the end).
    keyboard : bool
        Read ``q`` and space from the terminal (stdin when it is one, else ``/dev/tty``).
    summary : bool
        Print ``result.summary()`` on stdout once the screen is left.
    hold_output : bool
        Hold what Python writes to ``sys.stdout``/``sys.stderr`` while the HUD is up and
        write it out afterwards.
    clock : callable
        The monotonic clock used to keep to ``MIN_INTERVAL`` between refreshes.

    Examples
    --------
    >>> import minigun_nb as mg
    >>> from rich.console import Console
    >>> console = Console(record=True, width=100, height=30, force_terminal=True,
    ...                   file=open("/dev/null", "w"))
    >>> pipe = mg.Pipeline([mg.processor(lambda x: x, name="same")])
    >>> hud = HudDisplay(console=console, keyboard=False, summary=False, hold_output=False)
    >>> from minigun_nb.runtime.handle import run
    >>> run(pipe, items=range(3), displays=[hud]).status
    'done'
    >>> "same" in console.export_text()
    True
    """

    def __init__(self, *, console: Console | None = None, keyboard: bool = True,
                 summary: bool = True, hold_output: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self.keyboard = keyboard
        self.summary = summary
        self.hold_output = hold_output
        self._clock = clock
        self._lock = threading.RLock()
        self._handle: Any = None
        self._dag: Dag | None = None
        self._live: Live | None = None
        self._latest: Any = None
        #: what the screen shows: (snapshot, (error records, errors in all)); kept when frozen
        self._shown: tuple[Any, tuple[list[Any], int]] | None = None
        self._last_draw = float("-inf")
        self._pending = False
        self.frozen = False
        self.active = False
        self.refreshes = 0
        self._held: list[tuple[str, _Held]] = []
        self._log_handlers: list[tuple[Any, Any]] = []
        self._tty_fd: int | None = None
        self._own_fd = False
        self._saved_attrs: list[Any] | None = None
        self._wake: tuple[int, int] | None = None
        self._keys: threading.Thread | None = None
        self._closing = threading.Event()

    # -- the seam --------------------------------------------------------------------------

    def on_start(self, handle: Any) -> None:
        """Take over the screen (in the caller's thread) and draw the first frame."""
        self._handle = handle
        console = self._console
        if console is None:
            console = Console(file=sys.stdout)
            if not isatty(sys.stdout) or console.is_dumb_terminal:
                print("minigun_nb: the HUD needs a terminal on stdout; showing the summary "
                      "at the end instead.", file=sys.stderr)
                return
            self._console = console
        self._dag = Dag.of_graph(handle.graph)
        try:
            self._enter(console)
            self._draw(handle.snapshot)
        except BaseException:
            self.leave()
            raise

    def on_snapshot(self, snapshot: Any) -> None:
        """Draw ``snapshot`` (at most 10 times a second; not while frozen)."""
        self._latest = snapshot
        if not self.active or self.frozen:
            return  # frozen: kept, drawn when space resumes
        self._pending = True
        try:
            self._maybe_draw()
        except BaseException:
            self.leave()  # the follower detaches a display that raises: the terminal first
            raise

    def on_end(self, result: Any) -> None:
        """Leave the screen; print the summary on stdout."""
        self.leave()
        if self.summary:
            print(result.summary(), file=sys.stdout, flush=True)

    # -- keys ------------------------------------------------------------------------------

    def key(self, char: str) -> None:
        """Act on one key: ``q`` stops the run (draining; again: cancels), space freezes."""
        handle = self._handle
        if char in ("q", "Q") and handle is not None:
            handle.stop(drain=not _stopping(handle))  # the second q (or q after ^C) cancels
        elif char == " ":
            with self._lock:
                self.frozen = not self.frozen
        else:
            return
        with self._lock:
            self._pending = True
        self._maybe_draw()

    def _read_keys(self) -> None:
        fd, wake = self._tty_fd, self._wake
        assert fd is not None and wake is not None
        try:
            while not self._closing.is_set():
                ready, _, _ = select.select([fd, wake[0]], [], [], MIN_INTERVAL)
                if self._closing.is_set():
                    return
                if fd in ready:
                    data = os.read(fd, 64)
                    if not data:
                        return
                    for char in data.decode("utf-8", "replace"):
                        self.key(char)
                idle = self._clock() - self._last_draw >= IDLE_INTERVAL
                if idle and not self.frozen and self._handle is not None:
                    self._latest = self._handle.snapshot  # keep the clock going
                    self._pending = True
                self._maybe_draw()  # what was held back by MIN_INTERVAL, or the idle frame
        except Exception:  # noqa: BLE001 - the keys die, the run goes on; screen put back
            self.leave()
            raise

    # -- the screen ------------------------------------------------------------------------

    def _enter(self, console: Console) -> None:
        _install_hooks()
        _ACTIVE.add(self)
        self.active = True
        if self.hold_output:
            for name in ("stdout", "stderr"):
                held = _Held(getattr(sys, name))
                self._held.append((name, held))
                setattr(sys, name, held)
            self._hold_log_handlers()
        if self.keyboard:
            self._cbreak()
        self._live = Live(console=console, screen=True, auto_refresh=False,
                          redirect_stdout=False, redirect_stderr=False, transient=True)
        self._live.start()
        if self._tty_fd is not None:
            self._wake = os.pipe()
            self._keys = threading.Thread(target=self._read_keys, daemon=True,
                                          name="mg-hud-keys")
            self._keys.start()

    def _cbreak(self) -> None:
        """Keys one at a time, not echoed; Ctrl-C still interrupts (ISIG stays on)."""
        try:
            import termios
        except ImportError:  # no POSIX terminal (Windows): the HUD shows, keys are not read
            return

        fd, own = None, False
        if isatty(sys.__stdin__):
            fd = sys.__stdin__.fileno()  # type: ignore[union-attr]
        else:
            try:
                fd, own = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY), True
            except OSError:
                return
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                raise OSError("in the background")  # touching the tty would stop us (SIGTTOU)
            saved = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSANOW, mode)
        except (OSError, termios.error):
            if own:
                os.close(fd)
            return
        self._tty_fd, self._own_fd, self._saved_attrs = fd, own, saved

    def _maybe_draw(self) -> None:
        """Draw what is pending, unless the last refresh was less than MIN_INTERVAL ago.

        While frozen, a new snapshot is not drawn (it is kept for later); a key press is (the
        same picture, with the FROZEN mark or without it).
        """
        with self._lock:
            if not self.active or not self._pending:
                return
            if self._clock() - self._last_draw < MIN_INTERVAL:
                self._pending = True  # the key thread (or the next snapshot) draws it
                return
            if self.frozen and self._shown is not None:
                snapshot, errors = self._shown  # the frozen picture, with the FROZEN mark
            else:
                snapshot, errors = self._latest, _error_records(self._handle)
            if snapshot is None:
                return
            self._render(snapshot, errors)

    def _draw(self, snapshot: Any) -> None:
        with self._lock:
            self._latest = snapshot
            self._render(snapshot, _error_records(self._handle))

    def _render(self, snapshot: Any, errors: tuple[list[Any], int]) -> None:
        live = self._live
        if live is None:
            return
        console = live.console
        width, height = console.size
        screen = render_screen(snapshot, self._dag, errors[0], errors_total=errors[1],
                               frozen=self.frozen,
                               stopping=_stopping(self._handle), width=width,
                               height=height, console=console)
        live.update(screen, refresh=True)
        self._shown = (snapshot, errors)
        self._last_draw = self._clock()
        self._pending = False
        self.refreshes += 1

    def leave(self) -> None:
        """Put the terminal back (idempotent): keys, tty mode, screen, held output."""
        self._closing.set()
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
        keys = self._keys
        if keys is not None and keys is not threading.current_thread():
            keys.join(2.0)
        with self._lock:
            if not self.active:
                return
            self.active = False
            self._restore_tty()
            live, self._live = self._live, None
            if live is not None:
                live.stop()
            self._release_output()
            if self._wake is not None:
                for fd in self._wake:
                    _close(fd)
                self._wake = None
            _ACTIVE.discard(self)

    def _restore_tty(self) -> None:
        fd, saved = self._tty_fd, self._saved_attrs
        self._tty_fd = self._saved_attrs = None
        if fd is None:
            return
        import termios

        try:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (OSError, termios.error):
            pass
        if self._own_fd:
            _close(fd)

    def _hold_log_handlers(self) -> None:
        """Log handlers writing to the terminal write to the held streams meanwhile."""
        import logging

        by_real = {id(held.real): held for _, held in self._held}
        for logger in (logging.getLogger(), logging.getLogger("minigun_nb")):
            for handler in logger.handlers:
                stream = getattr(handler, "stream", None)
                if isinstance(handler, logging.StreamHandler) and id(stream) in by_real:
                    handler.setStream(by_real[id(stream)])  # type: ignore[arg-type]
                    self._log_handlers.append((handler, stream))

    def _release_output(self) -> None:
        for handler, stream in self._log_handlers:
            if handler.stream is not stream:
                handler.setStream(stream)
        self._log_handlers = []
        held, self._held = self._held, []
        for name, stream in held:
            if getattr(sys, name) is stream:
                setattr(sys, name, stream.real)
        for _, stream in held:
            stream.release()

    def _emergency_restore(self) -> None:
        """At exit or on SIGTERM: no locks (the holder may be the interrupted frame)."""
        if not self.active:
            return
        self.active = False
        self._live = None
        self._closing.set()
        self._restore_tty()
        out = getattr(self._console, "file", None)  # the terminal the HUD drew on
        try:
            if out is not None:
                out.write("\x1b[?25h\x1b[?1049l")  # show the cursor, leave the alternate screen
                out.flush()
        except (OSError, ValueError):
            pass
        self._release_output()
        _ACTIVE.discard(self)

    def __repr__(self) -> str:
        return f"<HudDisplay {'on screen' if self.active else 'off screen'}>"


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
