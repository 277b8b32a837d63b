"""The notebooks as a person meets them: JupyterLab in a real Chromium, driven by Playwright.

For every notebook with widgets: open a FAST=True copy, run all cells, wait for
the kernel to go idle, check there is no error output and no "Error displaying
widget", move a slider and check the plotly figure redrew, save a screenshot.
JupyterLab and Chromium are started here and stopped by this module's own
teardown, by process id.  Without a Chromium the test is skipped, unless CI is
set, where it fails.
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
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGET_NOTEBOOKS = {  # notebook -> the slider to move (its description)
    "01_inner_loop_as_ode.ipynb": "step size h",
    "02_adjoint_vs_unrolled.ipynb": "inner steps",
    "03_why_not_backward.ipynb": "λmax",
    "04_baselines.ipynb": "CG steps",
    "08_when_does_a_long_loop_pay_off.ipynb": "trained N",
}
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-breakpad", "--disable-crash-reporter",
                  "--window-size=1400,1000"]
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process and everything it started (its own process group), by process id."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
    try:  # children that outlived their parent (a kernel, a renderer) are still in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout} s")


class Lab:
    """A JupyterLab server on localhost with a token, serving FAST=True copies of the notebooks."""

    def __init__(self, workdir: Path, disabled_extensions=()):
        import papermill

        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.root = workdir / "notebooks"
        self.root.mkdir(parents=True)
        for name in WIDGET_NOTEBOOKS:  # a copy with the parameter set (papermill injects the cell, runs nothing)
            papermill.execute_notebook(str(ROOT / "notebooks" / name), str(self.root / name),
                                       parameters={"FAST": True}, prepare_only=True, progress_bar=False)
        config = workdir / "config"
        (config / "labconfig").mkdir(parents=True)
        disabled = {"@jupyterlab/apputils-extension:announcements": True, **{e: True for e in disabled_extensions}}
        (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
                   OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), AMAML_LAB_QUIET="1")
        self.log = open(workdir / "lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             f"--LabApp.workspaces_dir={workdir / 'workspaces'}", "--ServerApp.port_retries=0",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_http(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", self.proc, "JupyterLab")
        except BaseException:
            self.stop()
            raise

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{name}?token={self.token}&reset"

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


class Browser:
    """Chromium started here (so its process id is ours to stop), driven by Playwright over CDP."""

    def __init__(self, executable: str, workdir: Path):
        from playwright.sync_api import sync_playwright

        self.port = _free_port()
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--remote-debugging-port={self.port}",
             f"--user-data-dir={workdir / 'chromium-profile'}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.playwright = self.browser = None
        try:
            _wait_http(f"http://127.0.0.1:{self.port}/json/version", self.proc, "Chromium")
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{self.port}")
            self.context = self.browser.contexts[0]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            try:
                if self.playwright is not None:
                    self.playwright.stop()
            finally:
                _stop(self.proc)


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium found (apt-get install -y chromium); the browser test must run under CI")
        pytest.skip("no Chromium found (apt-get install -y chromium, or set CHROMIUM=/path/to/chromium)")
    pytest.importorskip("playwright", reason="the test extra installs playwright")
    return path


@pytest.fixture(scope="module")
def session(chromium, tmp_path_factory):
    work = tmp_path_factory.mktemp("browser")
    lab = Lab(work)
    try:
        browser = Browser(chromium, work)
    except BaseException:
        lab.stop()
        raise
    yield lab, browser
    try:
        browser.stop()
    finally:
        lab.stop()
    time.sleep(0.5)
    assert not _group_alive(lab.proc.pid) and not _group_alive(browser.proc.pid)


def _plot_data(page) -> list:
    """Every plotly graph's traces (x and y) on the page, read from the graph divs."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
        gd => (gd.data || []).map(t => [Array.from(t.x || []), Array.from(t.y || [])]))""")


def _named_traces(page, plots) -> list:
    """(name, data) of each trace of the horizon explorer's figure (the graph with a trace 'model at u(T)')."""
    names = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
        gd => (gd.data || []).map(t => t.name || ''))""")
    for graph_names, graph in zip(names, plots):
        if "model at u(T)" in graph_names:
            return list(zip(graph_names, graph))
    return []


def _wait_until(predicate, timeout: float, what: str, page=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _kernel_idle_and_all_run(page) -> bool:
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
    # JupyterLab renders only the cells near the view: the others' prompts come back empty
    shown = [p.strip() for p in prompts if p.strip()]
    return bool(shown) and all(p not in ("[*]:", "[ ]:") for p in shown) and status == "idle"


def _errors(page) -> list[str]:
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    found = [t[:300] for t in stderr if "Traceback" in t or "Error" in t]
    body = page.locator(".jp-Notebook").inner_text()
    if "Error displaying widget" in body:
        found.append("Error displaying widget")
    return found


def run_and_check(page, lab: Lab, name: str, slider: str, shot: Path | None) -> None:
    """Open, run all, check outputs and widgets, move a slider, check the redraw; raise AssertionError if not."""
    page.goto(lab.url(name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _wait_until(lambda: page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle").count(), 120,
                "the kernel to start")
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    _wait_until(lambda: _kernel_idle_and_all_run(page), 240, f"{name} to finish running")
    errors = _errors(page)
    assert not errors, f"{name}: error output {errors}"
    plots = _wait_until(lambda: _plot_data(page), 30, f"a plotly figure in {name}")
    handle = page.locator(".widget-slider", has_text=slider).locator(".noUi-handle").first
    try:
        handle.wait_for(timeout=30_000)
    except Exception as err:  # playwright's timeout: the widget did not render (a static figure may stand in)
        raise AssertionError(f"{name}: no slider '{slider}' rendered ({type(err).__name__})") from None
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("ArrowRight")
    _wait_until(lambda: _plot_data(page) != plots and _kernel_idle_and_all_run(page), 180,
                f"a figure in {name} to redraw after moving '{slider}'")
    assert not _errors(page), f"{name}: error output after moving '{slider}'"
    if name.startswith("02"):  # the horizon explorer: every panel's data follows the steps
        before = _wait_until(lambda: _named_traces(page, plots), 10, "the horizon explorer's figure")
        after = _named_traces(page, _plot_data(page))
        panels = {"model at u(T)", "at T", "steps now"}  # (a); (b) and both of (c); both of (d)
        still = [n for (n, b), (_, a) in zip(before, after) if n in panels and a == b]
        assert before and not still, f"{name}: moving '{slider}' left these traces as they were: {still}"
    if shot is not None:  # the app's output: its controls, status line and figure, after the redraw
        app = page.locator(".jp-OutputArea-output", has=page.locator(".widget-slider", has_text=slider)).first
        if name.startswith("02"):  # the horizon explorer is tall: a taller window shows all of it
            page.set_viewport_size({"width": 1400, "height": 2000})
        app.scroll_into_view_if_needed()
        time.sleep(1)  # let plotly finish its transition
        app.screenshot(path=str(shot))


@pytest.mark.parametrize("name", list(WIDGET_NOTEBOOKS))
def test_notebook_in_jupyterlab(session, name, tmp_path):
    lab, browser = session
    shots = Path(os.environ.get("AMAML_LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.context.new_page()
    try:
        run_and_check(page, lab, name, WIDGET_NOTEBOOKS[name], shots / f"{name.split('_')[0]}.png")
    finally:
        page.close()
    assert (shots / f"{name.split('_')[0]}.png").stat().st_size > 10_000


def test_the_check_fails_when_widgets_do_not_render(session, tmp_path):
    """With JupyterLab's widget manager disabled the widgets cannot render: the same check must fail."""
    _, browser = session
    lab = Lab(tmp_path / "broken", disabled_extensions=[WIDGET_MANAGER])
    page = browser.context.new_page()
    try:
        with pytest.raises(AssertionError, match="plotly figure|Error displaying widget|slider"):
            run_and_check(page, lab, "01_inner_loop_as_ode.ipynb", "step size h", None)
    finally:
        page.close()
        lab.stop()
    time.sleep(0.5)
    assert not _group_alive(lab.proc.pid)
