"""deliver_while_busy: a widget's message from the page reaches a cell that blocks.

These tests start a real ipykernel (no browser) and play the page's part with a
jupyter_client: they send the ``comm_msg`` an anywidget ``model.send({"type": "stop"})``
produces while a cell blocks waiting for it.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from minigun_nb.display._comm import deliver_while_busy

jupyter_client = pytest.importorskip("jupyter_client")

# Makes a widget whose "stop" handler sets an Event, and a background thread that, once the
# event is set, prints: a thread has no context of its own, so its output goes to the
# kernel's fallback parent, which must still be the blocking cell after the click.
SETUP = textwrap.dedent(
    """
    import sys, threading, anywidget, traitlets
    from minigun_nb.display._comm import deliver_while_busy

    class Probe(anywidget.AnyWidget):
        _esm = "export default { render() {} }"
        status = traitlets.Unicode("running").tag(sync=True)

    stop = threading.Event()
    probe = Probe()

    def on_stop(widget, content, buffers):
        if content.get("type") == "stop":
            widget.status = "stopping"
            stop.set()

    probe.on_msg(on_stop)
    delivered = deliver_while_busy(probe) if USE_HOOK else False
    print("COMM", probe.comm.comm_id, delivered)

    def _later():
        stop.wait(60)
        sys.stdout.write("from a thread after the click\\n")  # one write: no interleaving

    threading.Thread(target=_later, daemon=True).start()
    """
)

BLOCK = textwrap.dedent(
    """
    arrived = stop.wait(WAIT_S)
    sys.stdout.write(("ARRIVED " if arrived else "BLOCKED ") + probe.status + "\\n")
    """
)


class Kernel:
    """A started kernel and its client, with helpers reading its IOPub messages."""

    def __init__(self) -> None:
        self.km, self.kc = jupyter_client.manager.start_new_kernel(
            kernel_name="python3", startup_timeout=60
        )
        self.iopub: list[dict[str, Any]] = []

    def run(self, code: str, timeout: float = 60) -> str:
        """Execute code, wait for its reply, return the stdout it printed."""
        msg_id = self.kc.execute(code)
        self.kc.get_shell_msg(timeout=timeout)  # the execute_reply
        return self.wait_idle(msg_id, timeout)

    def wait_idle(self, msg_id: str, timeout: float = 60) -> str:
        """Collect IOPub until the request msg_id is idle; return its stdout."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            self.iopub.append(msg)
            if (
                msg["msg_type"] == "status"
                and msg["parent_header"].get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "idle"
            ):
                break
        return "".join(
            m["content"]["text"]
            for m in self.iopub
            if m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id
        )

    def wait_busy(self, msg_id: str, timeout: float = 60) -> None:
        """Wait until the request msg_id has started executing."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            self.iopub.append(msg)
            if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
                return

    def click_stop(self, comm_id: str) -> str:
        """Send what the page sends for ``model.send({"type": "stop"})``."""
        msg = self.kc.session.msg(
            "comm_msg",
            {"comm_id": comm_id, "data": {"method": "custom", "content": {"type": "stop"}}},
        )
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        yield k
    finally:
        k.close()


def start_blocking(kernel: Kernel, use_hook: bool, wait_s: float) -> tuple[str, str, str]:
    out = kernel.run(f"USE_HOOK = {use_hook}\nWAIT_S = {wait_s}\n" + SETUP)
    _, comm_id, delivered = out.split()[:3]
    block_id = kernel.kc.execute(BLOCK)
    kernel.wait_busy(block_id)
    return comm_id, delivered, block_id


@pytest.mark.timeout(90)
def test_stop_reaches_a_blocking_cell(kernel: Kernel) -> None:
    comm_id, delivered, block_id = start_blocking(kernel, use_hook=True, wait_s=60)
    assert delivered == "True"
    kernel.click_stop(comm_id)
    out = kernel.wait_idle(block_id)
    # The handler ran while the cell blocked: the cell saw the event and the trait it set.
    assert "ARRIVED stopping" in out.splitlines(), out
    # The thread printed after the click, and its output still belongs to the cell (the
    # fallback parent the subshell's dispatch had replaced was put back).
    assert any(
        m["msg_type"] == "stream"
        and "from a thread after the click" in m["content"]["text"]
        and m["parent_header"].get("msg_id") == block_id
        for m in kernel.iopub
    ), [m for m in kernel.iopub if m["msg_type"] == "stream"]
    # The widget's answer went to the page as a comm update.
    assert any(
        m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and m["content"]["data"].get("state", {}).get("status") == "stopping"
        for m in kernel.iopub
    )
    # A second widget reuses the same delivery subshell.
    again = kernel.run(
        "probe2 = Probe(); manager = get_ipython().kernel.shell_channel_thread.manager\n"
        "print(deliver_while_busy(probe2), len(manager.list_subshell()))"
    )
    assert again.split() == ["True", "1"]


@pytest.mark.timeout(90)
def test_every_click_arrives_while_the_cell_blocks(kernel: Kernel) -> None:
    # Stop then Cancel: the second message is routed and handled like the first (the
    # fallback parent recorded for it is still the cell's, not the first click's).
    comm_id, _, _ = start_blocking(kernel, use_hook=True, wait_s=0)
    kernel.wait_idle(kernel.kc.execute("pass"))
    out = kernel.run(
        "seen = []\n"
        "probe.on_msg(lambda w, content, buffers: seen.append(content.get('drain', True)))\n"
        "print('ready')"
    )
    assert out.strip() == "ready"
    block_id = kernel.kc.execute(
        "import time\n"
        "deadline = time.monotonic() + 60\n"
        "while len(seen) < 2 and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "sys.stdout.write(f'SEEN {seen}\\n')"
    )
    kernel.wait_busy(block_id)
    kernel.click_stop(comm_id)
    msg = kernel.kc.session.msg(
        "comm_msg",
        {"comm_id": comm_id, "data": {"method": "custom",
                                      "content": {"type": "stop", "drain": False}}},
    )
    kernel.kc.shell_channel.send(msg)
    assert "SEEN [True, False]" in kernel.wait_idle(block_id).splitlines()


@pytest.mark.timeout(90)
def test_without_the_hook_the_click_waits_for_the_cell(kernel: Kernel) -> None:
    # The control case, proving the test above measures the hook: the same click sent
    # while the cell blocks is handled only after the cell has ended.
    comm_id, delivered, block_id = start_blocking(kernel, use_hook=False, wait_s=3)
    assert delivered == "False"
    kernel.click_stop(comm_id)
    assert kernel.wait_idle(block_id).splitlines() == ["BLOCKED running"]
    assert kernel.run("stop.wait(30); print(stop.is_set(), probe.status)").split() == [
        "True",
        "stopping",
    ]


@pytest.mark.timeout(90)
def test_state_sync_keeps_the_kernels_routing(kernel: Kernel) -> None:
    # Only custom messages go to the subshell; an "update" from the page is still handled
    # by the shell that owns the widget (after the cell), as ipykernel routes it.
    out = kernel.run(
        "USE_HOOK = True\nWAIT_S = 1\n"
        + SETUP
        + "\nroute = probe.comm._reply_subshell_for\n"
        "print(route({'method': 'update', 'state': {}}, 'X'),"
        " route({'method': 'custom', 'content': {}}, 'X') != 'X')"
    )
    assert out.splitlines()[-1] == "None True"


def test_no_kernel_no_change() -> None:
    class Widget:
        def __init__(self) -> None:
            self.comm = object()

    widget = Widget()
    assert deliver_while_busy(widget) is False
    assert not hasattr(widget.comm, "_reply_subshell_for")


def test_widget_without_comm() -> None:
    class Closed:
        comm = None

    assert deliver_while_busy(Closed()) is False
