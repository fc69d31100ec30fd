"""``minigun-nb run NB --output EXECUTED.ipynb``: run the notebook in a Jupyter kernel and save it.

The notebook is executed cell by cell by nbclient in a fresh kernel of this Python
(``store_widget_state=False``: a finished run's widget has already replaced itself with the
static dashboard, so the saved notebook needs no widget state). ``-p`` values go in a new code
cell tagged ``injected-parameters`` right after the cell tagged ``parameters`` (at the top when
there is none), as papermill does; an ``injected-parameters`` cell from an earlier execution is
replaced. The notebook is saved also when a cell fails or the job is interrupted, so a nightly
run always leaves a readable report.

How the runs went is learnt inside the kernel: before the first cell, a silent execution adds
a result listener that appends each finished run's record (status, totals, first error rows,
summary) to a file the runner reads; after the last cell, another waits for the runs the
notebook left running. Neither leaves a name in the notebook's namespace nor a cell in it.

SIGINT: the first interrupts the kernel (the running ``run()`` drains, as the notebook's
Interrupt button does) and no further cell runs; a second interrupts it again (the run is
cancelled). The exit status is then 130.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["inject_parameters", "run_in_kernel"]

INJECTED_TAG = "injected-parameters"
#: the kernel runs this very Python (the runner's virtualenv), whatever kernelspecs are installed
KERNEL = "minigun-nb-python"

_TALLY = """
def _minigun_nb_tally(path, logs, level):
    import json
    from minigun_nb.notebook.cli import run_record
    from minigun_nb.runtime import handle

    def listener(result):
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(run_record(result), default=str) + "\\n")

    handle.RESULT_LISTENERS.append(listener)
    if logs is not None:  # --log-json: the kernel's records too, as JSON lines in a file
        import logging
        from minigun_nb.notebook.logjson import JsonLinesFormatter

        out = logging.FileHandler(logs, encoding="utf-8")
        out.setFormatter(JsonLinesFormatter())
        out.setLevel(level)
        logger = logging.getLogger("minigun_nb")
        logger.addHandler(out)
        logger.setLevel(level)
_minigun_nb_tally({path!r}, {logs!r}, {level!r})
del _minigun_nb_tally
"""

_WAIT = """
def _minigun_nb_wait():
    from minigun_nb.runtime import handle
    for h in list(handle.LIVE_HANDLES):
        h.wait()
        h.join_displays()
_minigun_nb_wait()
del _minigun_nb_wait
"""


def inject_parameters(nb: Any, values: dict[str, Any]) -> None:
    """Put ``values`` in a cell tagged ``injected-parameters`` after the ``parameters`` cell.

    Examples
    --------
    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
    ...                             v4.new_code_cell("print(n)")])
    >>> inject_parameters(nb, {"n": 3})
    >>> [c.source for c in nb.cells]
    ['n = 1', '# Parameters\\nn = 3', 'print(n)']
    """
    import nbformat.v4 as v4

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not values:
        return
    at = 0
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            at = i + 1
            break
    source = "# Parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in values.items())
    nb.cells.insert(at, v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]}))


def run_in_kernel(target: str, output: str, values: dict[str, Any], opts: Any) -> int:
    """Execute ``target`` in a kernel, save it to ``output``; return the exit status."""
    import nbformat

    from .cli import exit_status, log_finished, say
    from .export import read_notebook

    nb = read_notebook(target)
    inject_parameters(nb, values)
    fd, tally = tempfile.mkstemp(prefix="minigun-nb-", suffix=".jsonl")
    os.close(fd)
    logs = None
    if opts.log_json:
        fd, logs = tempfile.mkstemp(prefix="minigun-nb-logs-", suffix=".jsonl")
        os.close(fd)
    setup = _TALLY.format(path=tally, logs=logs, level=10 if opts.verbose else 20)
    state = {"interrupts": 0, "failed_cell": None, "error": None}
    try:
        # with --log-json stderr holds JSON lines only: the kernel's own chatter goes
        quiet = {"stderr": subprocess.DEVNULL} if opts.log_json else {}
        with tempfile.TemporaryDirectory(prefix="minigun-nb-kernel-") as specs:
            asyncio.run(_execute(nb, setup, opts.timeout, state, quiet, specs))
    except KeyboardInterrupt:  # before the kernel was up
        state["interrupts"] = max(1, int(state["interrupts"]))  # type: ignore[call-overload]
    finally:
        nb.metadata.pop("widgets", None)
        try:
            nbformat.write(nb, output)
        except OSError as exc:
            say(f"minigun-nb: cannot save {output}: {exc}", opts.log_json, logging.ERROR)
        records = []
        for line in Path(tally).read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
        os.unlink(tally)
        if logs is not None:  # the kernel's records first, then the runner's
            sys.stderr.write(Path(logs).read_text(encoding="utf-8"))
            sys.stderr.flush()
            os.unlink(logs)
    for record in records:  # stdout keeps the summaries (the notebook has the dashboards)
        log_finished(record)
        print(record["summary"], flush=True)
    status = exit_status(records, opts.allow_errors, opts.log_json)
    say(f"minigun-nb: saved the executed notebook as {output}", opts.log_json)
    if state["interrupts"]:
        say("minigun-nb: interrupted", opts.log_json, logging.WARNING)
        return 130
    if state["error"] is not None:
        say(f"minigun-nb: {state['error']}", opts.log_json, logging.ERROR)
        return 1
    return status


async def _execute(nb: Any, setup: str, timeout: float | None, state: dict[str, Any],
                   launch: dict[str, Any], specs: str) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbclient.util import ensure_async

    client = NotebookClient(
        nb, km=_kernel_manager(specs), timeout=timeout, kernel_name=KERNEL, store_widget_state=False,
        allow_errors=False, resources={"metadata": {"path": os.getcwd()}},
    )
    client.reset_execution_trackers()
    async with client.async_setup_kernel(**launch):
        kc, km = client.kc, client.km
        assert kc is not None and km is not None
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def interrupt() -> None:  # replaces nbclient's handler (which kills the kernel)
            state["interrupts"] += 1
            stop.set()
            asyncio.ensure_future(ensure_async(km.interrupt_kernel()))

        try:
            loop.add_signal_handler(signal.SIGINT, interrupt)
        except (RuntimeError, NotImplementedError):  # not the main thread, or no signals
            pass
        await _silent(client, setup)
        info = await client.async_wait_for_reply(await ensure_async(kc.kernel_info()))
        if info is not None and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            if stop.is_set():
                break
            try:
                await client.async_execute_cell(
                    cell, index, execution_count=client.code_cells_executed + 1)
            except CellTimeoutError:
                state["error"] = (f"cell {index + 1} ran longer than --timeout {timeout} s; "
                                  f"the notebook is saved up to there")
                return
            except CellExecutionError as exc:
                if not stop.is_set():
                    name = getattr(exc, "ename", "an error")
                    value = " ".join(str(getattr(exc, "evalue", "")).split())[:300]
                    state["error"] = (f"cell {index + 1} raised {name}: {value}; the "
                                      f"notebook is saved with its traceback")
                return
            except DeadKernelError:
                state["error"] = f"the kernel died in cell {index + 1}"
                return
        if not stop.is_set():
            await _silent(client, _WAIT)


def _kernel_manager(specs: str) -> Any:
    """A kernel manager whose only kernelspec (written in the folder ``specs``) runs
    ``sys.executable -m ipykernel_launcher``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    folder = Path(specs) / KERNEL
    folder.mkdir()
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (minigun-nb run)", "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(folder.parent)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


async def _silent(client: Any, code: str) -> None:
    """Run ``code`` in the kernel without output or history (and raise if it fails)."""
    from nbclient.util import ensure_async

    msg_id = await ensure_async(client.kc.execute(code, silent=True, store_history=False))
    reply = await client.async_wait_for_reply(msg_id)
    if reply is not None and reply["content"].get("status") == "error":
        raise RuntimeError("the kernel could not run minigun-nb's setup: "
                           + str(reply["content"].get("evalue")))
