"""Making a widget's messages from the page arrive while a cell blocks (the Stop button).

A Jupyter kernel handles shell messages one at a time on its main thread, so a comm message
sent by the page while a cell runs a blocking ``pipe.run()`` normally waits until the cell ends:
too late for a Stop button. ipykernel 7 has *subshells*, each with its own thread, and since
7.4 it asks a comm where its messages should go. This module uses that to send the custom
messages of one widget's comm to a subshell of our own, which is idle, so its handler runs
at once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("minigun_nb")

# One delivery subshell per kernel, created on first use and kept for the kernel's life
# (an idle thread blocked in its event loop costs nothing).
_SUBSHELLS: dict[int, str] = {}
_CREATE_LOCK = threading.Lock()

# How long to wait for the kernel's shell channel thread to create the subshell. It only
# forwards messages, so it answers in milliseconds unless the kernel is dying.
CREATE_TIMEOUT_S = 5.0


def deliver_while_busy(widget: Any) -> bool:
    """Have the page's custom messages for ``widget`` handled even while a cell blocks.

    Call it once, in the kernel, after the widget exists and its ``on_msg`` handler is
    registered. Afterwards every custom message the page sends on the widget's comm (what
    anywidget's ``model.send(...)`` produces, e.g. ``{"type": "stop"}``) is handled on a
    dedicated kernel subshell thread instead of the main shell, so it reaches the handler
    while the main shell is blocked in ``pipe.run()``. State sync (``update``,
    ``request_state``) and ``comm_close`` keep ipykernel's own routing.

    Parameters
    ----------
    widget : ipywidgets.Widget
        An open widget (``widget.comm`` set) created in this kernel.

    Returns
    -------
    bool
        True when the override is in place. False, having changed nothing, outside an
        ipykernel kernel, with an ipykernel that has no subshells or does not ask the comm
        where to route (before 7.4), when a private detail below is missing, or when the
        subshell could not be created in time. The caller then tells the user to press
        the kernel's Interrupt button.

    Notes
    -----
    Checked against ipykernel 7.4.0 (with comm 0.2, ipywidgets 8.1, anywidget 0.9-0.11).
    It relies on these private details, each checked before use:

    - ``Kernel.shell_channel_thread_main`` (the shell channel thread) asks
      ``comm._reply_subshell_for(data, subshell_id)`` which subshell a ``comm_msg`` goes to;
      ipykernel's ``BaseComm`` answers "the subshell that last published on this comm",
      which for a widget updated from the blocking cell or its threads is the blocked main
      shell. We shadow that method on this one comm instance: custom messages go to our
      subshell, everything else to the original answer.
    - ``kernel.shell_channel_thread.manager`` (a ``SubshellManager``) with
      ``_create_subshell()``, which must run on the shell channel thread (we schedule it
      with ``shell_channel_thread.io_loop.add_callback``), and ``list_subshell()``.
    - ``dispatch_shell`` on a subshell calls ``set_parent``, which also sets the
      *process-wide fallback* parent (``kernel._shell_context``, and the shell's display
      hook, display publisher and stdout/stderr via ``kernel.shell.set_parent``) that
      threads without their own context (the run's workers, the display's follower) use
      for their output. Left alone, output and display updates from those threads would
      be attached to the click's message instead of the cell. Before the handler runs we
      put back the fallback that was current when the message was routed.
    - ``comm._msg_callback`` (the ``on_msg`` handler). On our subshell it is called
      directly rather than through ``comm.handle_msg``, which would fire IPython's
      ``pre_execute``/``post_execute`` events from a second thread while the cell runs.

    Examples
    --------
    Outside a kernel nothing is changed:

    >>> class NoComm:
    ...     comm = None
    >>> deliver_while_busy(NoComm())
    False
    """
    comm = getattr(widget, "comm", None)
    kernel = _running_kernel()
    if comm is None or kernel is None:
        return False
    original_route = getattr(comm, "_reply_subshell_for", None)
    if not callable(original_route) or not hasattr(type(comm), "_reply_subshell_for"):
        return False  # ipykernel < 7.4: the shell channel thread does not ask the comm
    if getattr(comm, "_minigun_delivery", None) is not None:
        return True  # already in place for this comm
    if not hasattr(comm, "_msg_callback") or not hasattr(comm, "comm_id"):
        return False
    channel = getattr(kernel, "shell_channel_thread", None)
    manager = getattr(channel, "manager", None)
    needed = (
        getattr(channel, "io_loop", None),
        getattr(manager, "_create_subshell", None),
        getattr(manager, "list_subshell", None),
        getattr(kernel, "_shell_parent", None),
    )
    if any(part is None for part in needed) or not hasattr(kernel, "_shell_context"):
        return False
    subshell_id = _delivery_subshell(kernel, channel, manager)
    if subshell_id is None:
        return False
    delivery = _Delivery(kernel, comm, manager, subshell_id, original_route)
    comm._reply_subshell_for = delivery.route
    comm.handle_msg = delivery.handle_msg
    comm._minigun_delivery = delivery
    return True


def _running_kernel() -> Any:
    """The ipykernel kernel of this process, or None (never imports ipykernel itself)."""
    if "ipykernel.kernelbase" not in sys.modules:
        return None
    kernel_class = sys.modules["ipykernel.kernelbase"].Kernel
    try:
        return kernel_class.instance() if kernel_class.initialized() else None
    except Exception:  # a half-torn-down kernel: no delivery, the caller falls back
        return None


def _delivery_subshell(kernel: Any, channel: Any, manager: Any) -> str | None:
    """The id of this kernel's delivery subshell, created on first use (None on failure)."""
    with _CREATE_LOCK:
        known = _SUBSHELLS.get(id(kernel))
        try:
            if known is not None and known in manager.list_subshell():
                return known
        except Exception:
            return None
        made: dict[str, Any] = {}
        done = threading.Event()

        def create() -> None:
            try:
                made["id"] = manager._create_subshell()
            except BaseException as exc:  # reported below; never kill the channel thread
                made["error"] = exc
            finally:
                done.set()

        if threading.current_thread() is channel:
            create()
        else:
            channel.io_loop.add_callback(create)
            if not done.wait(CREATE_TIMEOUT_S):
                log.warning("the kernel did not create a subshell for the Stop button in time")
                return None
        if "id" not in made:
            log.warning("the kernel could not create a subshell for the Stop button: %r",
                        made.get("error"))
            return None
        _SUBSHELLS[id(kernel)] = made["id"]
        return str(made["id"])


class _Delivery:
    """The routing override and message handler installed on one comm."""

    def __init__(
        self,
        kernel: Any,
        comm: Any,
        manager: Any,
        subshell_id: str,
        original_route: Callable[[Any, Any], Any],
    ) -> None:
        self.kernel = kernel
        self.comm = comm
        self.manager = manager
        self.subshell_id = subshell_id
        self.thread_name = f"subshell-{subshell_id}"
        self.original_route = original_route
        self.original_handle = comm.handle_msg
        # The fallback parent context current when our last message was routed (the cell's,
        # typically); put back on the subshell before the handler runs.
        self.fallback: Any = None
        self.delivered = 0

    def route(self, data: Any, default: Any) -> Any:
        """Runs on the shell channel thread for every comm_msg/comm_close of this comm."""
        if not (isinstance(data, dict) and data.get("method") == "custom"):
            return self.original_route(data, default)
        try:
            if self.subshell_id not in self.manager.list_subshell():
                return self.original_route(data, default)  # deleted by someone: old path
            context = self.kernel._shell_context
            if not self._is_ours(context.get(self.kernel._shell_parent)):
                self.fallback = context
        except Exception:
            return self.original_route(data, default)
        return self.subshell_id

    def handle_msg(self, msg: Any) -> None:
        """Runs where the message was delivered: our subshell, or the shell as before."""
        if threading.current_thread().name != self.thread_name:
            self.original_handle(msg)
            return
        self._restore_fallback(msg)
        self.delivered += 1
        callback = getattr(self.comm, "_msg_callback", None)
        if callback is not None:
            callback(msg)

    def _is_ours(self, parent: Any) -> bool:
        """True for a comm_msg of this comm (a parent our own subshell set)."""
        if not isinstance(parent, dict):
            return False
        header = parent.get("header") or {}
        content = parent.get("content") or {}
        return bool(
            header.get("msg_type") == "comm_msg"
            and isinstance(content, dict)
            and content.get("comm_id") == self.comm.comm_id
        )

    def _restore_fallback(self, msg: Any) -> None:
        """Undo the process-wide parent ``dispatch_shell`` set for this message."""
        kernel = self.kernel
        fallback = self.fallback
        if fallback is None:
            return
        try:
            if kernel._shell_context.get(kernel._shell_parent) is not msg:
                return  # someone set a newer parent since: theirs wins
            parent = fallback.get(kernel._shell_parent)
            kernel._shell_context = fallback
            shell = getattr(kernel, "shell", None)
            if parent is not None and shell is not None and hasattr(shell, "set_parent"):
                shell.set_parent(parent)
        except Exception:  # best effort: output may be attached to the click instead
            log.debug("could not restore the cell's parent after a widget message",
                      exc_info=True)
