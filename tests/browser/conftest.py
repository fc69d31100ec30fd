"""A real JupyterLab server and a real Chromium for the browser tests.

The server is ``.venv/bin/jupyter-lab`` itself on 127.0.0.1 with a random port, a token and
private config, data and runtime dirs; its kernel spec (written into the private data dir)
runs this interpreter. The browser is Debian's ``/usr/bin/chromium`` driven by pip's
``playwright`` (never ``playwright install``). Both are stopped by their pid in finalizers.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MINIGUN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
SERVER_START_S = 90.0
# Playwright timeouts (ms): a first notebook open builds JupyterLab's page and starts a
# kernel, which takes several seconds on a loaded 2-core machine.
PAGE_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running jupyter-lab: its URL, token, notebook folder and REST helpers."""

    port: int
    token: str
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, method: str, path: str, timeout: float = 30) -> Any:
        """Call the server's REST API; returns the decoded JSON body (None when empty)."""
        req = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def delete_sessions(self) -> None:
        """Shut every kernel of the server down (one session per open notebook)."""
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _write_kernelspec(data_dir: Path) -> None:
    # The private data dir comes first on the kernel spec path, so "python3" is this
    # interpreter (the venv's) whatever else is installed on the machine.
    spec = data_dir / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (minigun_nb tests)",
                "language": "python",
                "metadata": {"debugger": False},
            }
        )
    )


def _write_lab_settings(config_dir: Path) -> None:
    # No "get notified about Jupyter news?" toast: it can cover the output under test.
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate a process we started (its own group: the kernels go with it), then kill."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(grace)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Start jupyter-lab for the module; stop it (by pid) at the end."""
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    if not jupyter_lab.exists():
        pytest.fail(f"{jupyter_lab} is missing: install the dev extras (pip install -e '.[dev]')")
    home = tmp_path_factory.mktemp("lab")
    root = home / "notebooks"
    root.mkdir()
    dirs = {name: home / name for name in ("config", "data", "runtime", "ipython")}
    for d in dirs.values():
        d.mkdir()
    _write_kernelspec(dirs["data"])
    _write_lab_settings(dirs["config"])
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        # In a virtualenv jupyter_core puts the env's share/jupyter before the user data
        # dir; ours must come first so "python3" is the spec written above.
        JUPYTER_PREFER_ENV_PATH="0",
    )
    env.pop("JUPYTER_PATH", None)
    port = _free_port()
    token = secrets.token_hex(16)
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(jupyter_lab),
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--no-browser",
                "--allow-root",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.terminals_enabled=False",
                # Should pytest die without its finalizers (SIGKILL), the server, which has
                # a session of its own, still ends itself after 10 idle minutes.
                "--ServerApp.shutdown_no_activity_timeout=600",
                # No network from the server either: no news feed, no update check.
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # window.jupyterapp, read only to know when the notebook's kernel is ready.
                "--LabApp.expose_app_in_browser=True",
                "--JupyterNotebookApp.expose_app_in_browser=True",
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(port=port, token=token, root=root, log_path=log_path, process=process)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter-lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("GET", "status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter-lab did not answer on port {port} within {SERVER_START_S:.0f} s:"
                        f"\n{server.log_tail()}"
                    )
                time.sleep(0.25)
        yield server
    finally:
        try:
            if process.poll() is None:
                server.delete_sessions()
        except Exception:
            pass  # the server is being stopped anyway
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through playwright; a clear failure (not a skip) when missing."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's chromium "
            "(apt-get install -y chromium; `make test` does it). Never `playwright install`."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: install the dev extras (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=PAGE_TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page with its console errors, uncaught exceptions and dialogs recorded."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    #: exact messages of known, unrelated front-end noise a test chose to ignore
    forgiven: set[str] = field(default_factory=set)

    def problems(self) -> list[str]:
        errors = [e for e in self.console_errors if e not in self.forgiven]
        return [f"dialog: {d}" for d in self.dialogs] + errors


@pytest.fixture
def watched_page(browser: Any, lab: Lab) -> Iterator[Watched]:
    """A fresh page (own context) that records console errors and dialogs."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            watched.console_errors.append(f"console: {msg.text}")

    def on_dialog(dialog: Any) -> None:
        # An XSS payload that ran would call alert(): record it, then close the dialog so
        # the page goes on and the test can report it.
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.console_errors.append(f"pageerror: {exc}"))
    page.on("dialog", on_dialog)
    try:
        yield watched
    finally:
        context.close()
        try:
            lab.delete_sessions()
        except Exception:
            pass  # the module's finalizer stops the server anyway
