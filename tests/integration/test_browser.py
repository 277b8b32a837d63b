"""The notebooks as a person meets them: JupyterLab in a real Chromium, driven by Playwright.

For every notebook with widgets: open a FAST=True copy, run all cells, wait for
the kernel to go idle, check there is no error output and no "Error displaying
widget", move a slider and check the plotly figure redrew, save a screenshot.
Then every control of every app on the page (each app's widget carries the CSS
class ``amaml-app``): about ten moves, each timed inside the page from the input
event (key press, option chosen, button clicked) to the app's plotly graph
holding new data (its first ``plotly_afterplot`` or ``plotly_update`` after
the input), each of which must be drawn; then five quick moves in a row, after
which the kernel's app (asked through a second client of the same kernel) must
hold the values the controls show and its figure must be the data the browser
draws: no move lost.  The latencies are printed as a table, and written as
Markdown to the file ``AMAML_LAB_LATENCY`` names when it is set; they are not
asserted (a timed assert is flaky on a shared machine).
JupyterLab and Chromium are started here and stopped by this module's own
teardown, by process id.  Without a Chromium the test is skipped, unless CI is
set, where it fails.
"""

from __future__ import annotations

import ast
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDGET_NOTEBOOKS = {  # notebook -> the slider to move (its description)
    "01_inner_loop_as_ode.ipynb": "step size h",
    "02_adjoint_vs_unrolled.ipynb": "inner steps",
    "03_why_not_backward.ipynb": "λmax",
    "04_baselines.ipynb": "CG steps",
    "08_when_does_a_long_loop_pay_off.ipynb": "trained N",
    "09_exact_or_first_order_through_a_long_loop.ipynb": "inner steps N",
}
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--window-size=1400,1000",
]
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"


def find_chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
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
            papermill.execute_notebook(
                str(ROOT / "notebooks" / name),
                str(self.root / name),
                parameters={"FAST": True},
                prepare_only=True,
                progress_bar=False,
            )
        config = workdir / "config"
        (config / "labconfig").mkdir(parents=True)
        disabled = {"@jupyterlab/apputils-extension:announcements": True, **{e: True for e in disabled_extensions}}
        (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
        self.runtime = workdir / "runtime"
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_RUNTIME_DIR=str(self.runtime),
            OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
            AMAML_LAB_QUIET="1",
        )
        self.log = open(workdir / "lab.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
                "--ServerApp.port_retries=0",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=self.root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={workdir / 'chromium-profile'}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
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


def _wait_until(predicate, timeout: float, what: str, page=None, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
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
    _wait_until(
        lambda: page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle").count(),
        120,
        "the kernel to start",
    )
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    _wait_until(lambda: _kernel_idle_and_all_run(page), 600, f"{name} to finish running")
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
    readout = page.locator(".widget-slider", has_text=slider).locator(".widget-readout").first
    shown = readout.inner_text()
    # one step right, or left for an app that opens at the slider's end (notebook 09's opens at N = 1,000)
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.press("ArrowLeft" if at_end else "ArrowRight")
    try:
        _wait_until(
            lambda: _plot_data(page) != plots and _kernel_idle_and_all_run(page),
            180,
            f"a figure in {name} to redraw after moving '{slider}'",
        )
    except AssertionError as err:  # say which half failed, and what the kernel's app holds
        raise AssertionError(
            f"{err}: the slider reads {shown!r} -> {readout.inner_text()!r}; plots changed:"
            f" {_plot_data(page) != plots}; kernel {_kernel_status(page)!r}; prompts shown"
            f" {[p for p in page.locator('.jp-InputPrompt').all_inner_texts() if p.strip()]};"
            f" {_kernel_side(lab, name, slider)}"
        ) from None
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


# ---------------------------------------------------------------- every control: latency, and no move lost
MOVES = 10  # timed moves of each control, each waited for
QUICK = 5  # moves in a row, none waited for: the last must be the one drawn
CONTROLS = ".widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-select-multiple"

# once per page: the time of the first input event (key, mouse, option chosen) after a graph is armed
LISTEN_JS = """() => {
  if (window.__amamlLat) return;
  const L = window.__amamlLat = {armed: null};
  const mark = () => { const a = L.armed; if (a && a.t0 === null) a.t0 = performance.now(); };
  for (const type of ['keydown', 'mousedown', 'input', 'change']) window.addEventListener(type, mark, true);
}"""
# per move: arm the app's graph div; its first plotly draw event after the input with new trace data sets t1
# (plotly_animated: a move drawn by plotly's animate path, amaml_lab.viz.style.traces_only)
ARM_JS = """(gd) => {
  const refs = () => (gd.data || []).map(t => [t.x, t.y, t.z]);
  window.__amamlLat.armed = {t0: null, t1: null, gd: gd, refs: refs(), how: null};
  if (gd.__amamlHooked) return;
  gd.__amamlHooked = true;
  gd.__amamlDraws = 0;
  const changed = (a) => { const now = refs(); return now.length !== a.refs.length ||
      now.some((r, i) => r[0] !== a.refs[i][0] || r[1] !== a.refs[i][1] || r[2] !== a.refs[i][2]); };
  for (const ev of ['plotly_afterplot', 'plotly_update', 'plotly_restyle', 'plotly_relayout', 'plotly_react',
                    'plotly_animated'])
    gd.on(ev, () => {
      gd.__amamlDraws += 1;
      const a = window.__amamlLat.armed;
      if (a && a.gd === gd && a.t0 !== null && a.t1 === null && changed(a)) { a.t1 = performance.now(); a.how = ev; }
    });
}"""
GRAPH_DATA_JS = """gd => (gd.data || []).map(t => [Array.from(t.x || []), Array.from(t.y || [])])"""

# defined in the kernel by a second client: an app's controls (what they show, the room a slider has left and
# right of its value), its figure's trace data, its timings, and whether redrawing its values changes the figure
KERNEL_HELPER = r"""
def _amaml_state(uid, figure=True, redraw=False):
    import json, math
    import numpy as np
    from amaml_lab.widgets import App

    def data(fig):
        def column(v):
            return [] if v is None else np.asarray(v).tolist() if not isinstance(v, (list, tuple)) else list(v)
        return [[column(t.x), column(t.y)] for t in fig.data]

    app = App.live[uid]
    controls = {}
    for name, c in app.controls.items():
        d = {"name": name, "type": type(c).__name__}
        if hasattr(c, "_options_labels"):
            d["labels"] = list(c._options_labels)
            d["shown"] = list(c.label) if isinstance(c.label, tuple) else c.label
            d["index"] = list(c.index) if isinstance(c.index, tuple) else c.index
        else:
            base = getattr(c, "base", None)
            at = math.log(c.value, base) if base else c.value
            d["value"] = c.value
            d["right"], d["left"] = round((c.max - at) / c.step), round((at - c.min) / c.step)
        controls[c.description] = d
    out = {"type": type(app).__name__, "controls": controls, "timings": app.timings, "updates": app.updates,
           "status": app.status.value}
    if figure:
        out["data"] = data(app.figure)
    if redraw:
        before = data(app.figure)
        app.redraw()
        out["stale"] = data(app.figure) != before
    return json.dumps(out)
"""


class KernelClient:
    """A second client of the kernel behind an open notebook (its connection file in the server's runtime dir)."""

    def __init__(self, lab: Lab, name: str):
        from jupyter_client import BlockingKernelClient

        with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/api/sessions?token={lab.token}", timeout=10) as r:
            sessions = json.load(r)
        kernel = next(s["kernel"]["id"] for s in sessions if s["path"].endswith(name))
        self.client = BlockingKernelClient(connection_file=str(lab.runtime / f"kernel-{kernel}.json"))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.run(KERNEL_HELPER)

    def run(self, code: str, expression: str | None = None):
        msg_id = self.client.execute(
            code, silent=True, store_history=False, user_expressions={"v": expression} if expression else {}
        )
        while True:
            reply = self.client.get_shell_msg(timeout=180)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        assert content["status"] == "ok", f"the kernel could not run the test's helper: {content.get('evalue')}"
        if expression:
            value = content["user_expressions"]["v"]
            assert value["status"] == "ok", f"{expression}: {value.get('ename')}: {value.get('evalue')}"
            return json.loads(ast.literal_eval(value["data"]["text/plain"]))
        return None

    def state(self, uid: int, figure: bool = True, redraw: bool = False) -> dict:
        return self.run("", f"_amaml_state({uid}, figure={figure}, redraw={redraw})")

    def close(self) -> None:
        self.client.stop_channels()


class Control:
    """One control of an app in the page: what it shows, and one move of it."""

    KINDS = ("slider", "dropdown", "toggle-buttons", "select-multiple")

    def __init__(self, el):
        self.el = el
        classes = el.get_attribute("class") or ""
        self.kind = next(k for k in self.KINDS if f"widget-{k}" in classes)
        self.name = el.locator(".widget-label").first.inner_text().strip()

    def shown(self):
        if self.kind == "slider":
            return self.el.locator(".widget-readout").first.inner_text().strip()
        if self.kind == "dropdown":
            return self.el.locator("select").first.evaluate("s => s.options[s.selectedIndex].text").replace("\xa0", " ")
        if self.kind == "toggle-buttons":
            return self.el.locator("button.mod-active").first.inner_text().strip()
        return [
            t.replace("\xa0", " ")
            for t in self.el.locator("select").first.evaluate(  # the page writes an option's spaces as no-break ones
                "s => Array.from(s.selectedOptions).map(o => o.text)"
            )
        ]

    def plan(self, meta: dict, n: int) -> list:
        """``n`` moves from the kernel's view of the control: key directions for a slider (bouncing off its
        ends), option labels otherwise (the next one each time; for a multiple selection all but one)."""
        if self.kind == "slider":
            if "labels" in meta:  # a selection slider
                at, top = meta["index"], len(meta["labels"]) - 1
            else:
                at, top = meta["left"], meta["left"] + meta["right"]
            if top == 0:
                return []
            step, moves = (1 if top - at >= at else -1), []
            for _ in range(n):
                if not 0 <= at + step <= top:
                    step = -step
                at += step
                moves.append(step)
            return moves
        labels = meta["labels"]
        if self.kind == "select-multiple":  # all but one, the one left out the next each time
            left_out = [i for i, label in enumerate(labels) if label not in meta["shown"]]
            first = left_out[0] + 1 if len(left_out) == 1 else 0
            return [[label for label in labels if label != labels[(first + k) % len(labels)]] for k in range(n)]
        if len(labels) < 2:
            return []
        return [labels[(meta["index"] + 1 + k) % len(labels)] for k in range(n)]

    def move(self, step) -> None:
        if self.kind == "slider":
            self.el.locator(".noUi-handle").first.press("ArrowRight" if step > 0 else "ArrowLeft")
        elif self.kind == "toggle-buttons":
            self.el.locator("button", has_text=step).first.click()
        else:
            self.el.locator("select").first.select_option(label=step)


def _drawn(page, graph, kernel: KernelClient, uid: int, updates: int, timeout: float = 120) -> bool:
    """Wait for the armed move's draw: True once drawn; False for a move with nothing to draw (the kernel's app
    has taken it, and its figure is the data the page already shows: e.g. a CG step count past convergence);
    an AssertionError when neither happens within ``timeout`` seconds (a move lost)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            page.wait_for_function("() => window.__amamlLat.armed.t1 !== null", polling=10, timeout=1000)
            return True
        except Exception:  # playwright's timeout: ask the kernel whether there is anything to draw
            state = kernel.state(uid)
            if (
                state["updates"] >= updates
                and _same_data(graph.evaluate(GRAPH_DATA_JS), state["data"]) is None
                and page.evaluate("() => window.__amamlLat.armed.t1 === null")
            ):
                return False
    raise AssertionError(
        f"{state['type']}: a move was not drawn within {timeout} s (the kernel's app had taken"
        f" {state['updates']} moves, {updates} sent)"
    )


def _kernel_side(lab: Lab, name: str, slider: str) -> str:
    """What the kernel's apps hold (for a failure's message): each app's kind, updates and its control's value."""
    try:
        kernel = KernelClient(lab, name)
        try:
            held = kernel.run(
                "",
                "__import__('json').dumps([(type(a).__name__, a.updates, {n: str(c.value) for n, c in"
                " a.controls.items() if c.description == " + repr(slider) + "}) for a in"
                " __import__('amaml_lab.widgets').widgets.App.live.values()])",
            )
        finally:
            kernel.close()
        return f"the kernel's apps: {held}"
    except Exception as err:  # the diagnosis must not hide the failure it explains
        return f"the kernel could not be asked ({type(err).__name__}: {err})"


def _kernel_status(page) -> str | None:
    return page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")


def _settle(page, graph, quiet: float = 1.0, timeout: float = 120) -> None:
    """Wait until the kernel is idle and the graph has not drawn for ``quiet`` seconds."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        draws = graph.evaluate("gd => gd.__amamlDraws || 0")
        if draws != last or _kernel_status(page) != "idle":
            last, since = draws, time.time()
        elif time.time() - since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError(f"the page did not settle within {timeout} s")


def _same_data(browser: list, kernel: list) -> str | None:
    """Where the browser's traces differ from the kernel's figure (float32 tolerance), or None."""
    if len(browser) != len(kernel):
        return f"{len(browser)} traces drawn, {len(kernel)} in the kernel's figure"
    for i, (b, k) in enumerate(zip(browser, kernel)):
        for axis, bv, kv in (("x", b[0], k[0]), ("y", b[1], k[1])):
            if len(bv) != len(kv):
                return f"trace {i} {axis}: {len(bv)} points drawn, {len(kv)} in the kernel"
            for u, v in zip(bv, kv):
                if isinstance(u, (int, float)) and isinstance(v, (int, float)):
                    if not (
                        u == v or (math.isnan(u) and math.isnan(v)) or math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-12)
                    ):
                        return f"trace {i} {axis}: {u} drawn, {v} in the kernel"
                elif u != v and str(u) != str(v):
                    return f"trace {i} {axis}: {u!r} drawn, {v!r} in the kernel"
    return None


def _shown_matches(control: Control, meta: dict, shown) -> bool:
    """Whether what a control shows in the page is the kernel's value."""
    if "labels" in meta:
        return shown == meta["shown"]
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    shown = shown.replace("\u2212", "-")  # d3-format writes a minus sign
    return abs(float(shown) - meta["value"]) <= 0.51 * 10**-decimals + 1e-9 * abs(meta["value"])


class AppInPage:
    """One app on the page: its element, its graph, and the same app in the kernel (by its uid)."""

    def __init__(self, page, kernel: KernelClient, element, notebook: str):
        self.page, self.kernel, self.element, self.notebook = page, kernel, element, notebook
        self.uid = next(
            int(c.rsplit("-", 1)[1]) for c in element.get_attribute("class").split() if c.startswith("amaml-app-")
        )
        self.kind = kernel.state(self.uid, figure=False)["type"]
        self.graph = element.locator(".js-plotly-plot").first

    def where(self, control: Control) -> str:
        return f"{self.notebook}: {self.kind}: '{control.name}'"

    def meta(self, control: Control) -> dict:
        return self.kernel.state(self.uid, figure=False)["controls"][control.name]

    def timed_moves(self, control: Control) -> list:
        """:data:`MOVES` moves, each waited for: per move the page's (t0, t1, time origin), None for a move with
        nothing to draw."""
        times = []
        updates = self.kernel.state(self.uid, figure=False)["updates"]
        for step in control.plan(self.meta(control), MOVES):
            self.graph.evaluate(ARM_JS)
            control.move(step)
            updates += 1
            drawn = _drawn(self.page, self.graph, self.kernel, self.uid, updates)
            times.append(
                self.page.evaluate(
                    "() => { const a = window.__amamlLat.armed; return [a.t0, a.t1, performance.timeOrigin]; }"
                )
                if drawn
                else None
            )
            _settle(self.page, self.graph, quiet=0.3)
        return times

    def quick_moves(self, control: Control) -> None:
        """:data:`QUICK` moves in a row, none waited for; then the control shows the kernel app's value, the page
        draws the kernel's figure, and that figure is what the app's values draw (no move lost)."""
        meta = self.meta(control)
        before = control.shown()
        plan = control.plan(meta, QUICK)
        for step in plan:
            control.move(step)
        _settle(self.page, self.graph)
        state = self.kernel.state(self.uid)
        shown = control.shown()
        if plan and control.kind != "slider":  # a slider may bounce off its end
            assert shown != before, f"{self.where(control)} shows {shown!r} after {QUICK} quick moves"
        held = state["controls"][control.name]
        assert _shown_matches(control, held, shown), (
            f"{self.where(control)} shows {shown!r} but the kernel's app holds {held}"
        )
        differ = _same_data(self.graph.evaluate(GRAPH_DATA_JS), state["data"])
        assert differ is None, (
            f"{self.where(control)}: after {QUICK} quick moves the page does not draw the kernel's figure: {differ}"
        )
        assert not self.kernel.state(self.uid, figure=False, redraw=True)["stale"], (
            f"{self.where(control)}: after {QUICK} quick moves the figure is not its values' figure"
        )
        _settle(self.page, self.graph)


def check_apps(page, lab: Lab, name: str, rows: list | None) -> None:
    """Every control of every app on the page: timed moves (the first app of each kind; a row each in ``rows``)
    and quick moves.

    While it runs, the file ``AMAML_LAB_MEASURING`` names (when set) exists: a wrapper may quiet the machine
    meanwhile (``benchmarks/browser_latency.sh`` pauses given processes).
    """
    page.evaluate(LISTEN_JS)
    kernel = KernelClient(lab, name)
    seen = set()
    flag = Path(os.environ["AMAML_LAB_MEASURING"]) if os.environ.get("AMAML_LAB_MEASURING") else None
    if flag is not None:
        flag.touch()
        time.sleep(1)  # let the wrapper see it
    try:
        for element in page.locator(".amaml-app").all():
            app = AppInPage(page, kernel, element, name)
            timed = app.kind not in seen
            seen.add(app.kind)
            element.scroll_into_view_if_needed()
            app.graph.evaluate(ARM_JS)  # hooks the graph's events
            _settle(page, app.graph)
            for el in element.locator(CONTROLS).all():
                control = Control(el)
                if timed:
                    key = app.meta(control)["name"]
                    times = app.timed_moves(control)
                    if rows is not None:
                        timings = kernel.state(app.uid, figure=False)["timings"]
                        rows.append(_latency_row(name, app.kind, control.name, times, timings, key))
                app.quick_moves(control)
    finally:
        kernel.close()
        if flag is not None:
            flag.unlink(missing_ok=True)


def _latency_row(notebook: str, app: str, control: str, moves: list, timings: list, key: str) -> dict:
    """One row of the table from the page's (t0, t1, time origin) of each move (None for a move with nothing to
    draw) and the app's kernel timings (control, wall-clock start, seconds): the total, and its parts (to the
    kernel, in it, from it to drawn)."""
    mine = [(wall, spent) for c, wall, spent in timings if c == key][-len(moves) :]
    if len(mine) == len(moves):
        mine = [m for m, move in zip(mine, moves) if move is not None]
    times = [move for move in moves if move is not None]
    unchanged = len(moves) - len(times)
    total = [t1 - t0 for t0, t1, _ in times] or [float("nan")]
    parts = {"to_kernel_ms": None, "kernel_ms": None, "back_ms": None}
    if times and len(mine) == len(times):
        to_kernel = [1000 * wall - (origin + t0) for (t0, _, origin), (wall, _) in zip(times, mine)]
        kernel = [1000 * spent for _, spent in mine]
        back = [(origin + t1) - 1000 * (wall + spent) for (_, t1, origin), (wall, spent) in zip(times, mine)]
        parts = {
            "to_kernel_ms": statistics.median(to_kernel),
            "kernel_ms": statistics.median(kernel),
            "back_ms": statistics.median(back),
        }
    return {
        "notebook": notebook.split("_")[0],
        "app": app,
        "control": control,
        "moves": len(times),
        "unchanged": unchanged,
        "median_ms": statistics.median(total),
        "worst_ms": max(total),
        **parts,
    }


def latency_table(rows: list[dict]) -> str:
    lines = [
        "| notebook | app | control | median (ms) | worst (ms) | moves |"
        " to the kernel (ms) | in the kernel (ms) | kernel to drawn (ms) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        parts = " | ".join("" if r[k] is None else f"{r[k]:.0f}" for k in ("to_kernel_ms", "kernel_ms", "back_ms"))
        moves = f"{r['moves']}" + (f" (+{r['unchanged']} with nothing to draw)" if r.get("unchanged") else "")
        lines.append(
            f"| {r['notebook']} | {r['app']} | {r['control']} | {r['median_ms']:.0f} | {r['worst_ms']:.0f} |"
            f" {moves} | {parts} |"
        )
    return "\n".join(lines)


def _machine() -> str:
    import platform

    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{f' ({model})' if model else ''}"


@pytest.fixture(scope="module")
def latencies(request):
    """The rows of the latency table; printed at the end, and appended as Markdown to ``AMAML_LAB_LATENCY``."""
    rows: list[dict] = []
    yield rows
    if not rows:
        return
    table = latency_table(rows)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\nfrom input event to the app's graph drawn, in JupyterLab + Chromium:\n" + table)
    out = os.environ.get("AMAML_LAB_LATENCY")
    if out:
        note = os.environ.get("AMAML_LAB_LATENCY_NOTE", "")
        head = (
            f"## {time.strftime('%Y-%m-%d %H:%M')}: {_machine()}{f', {note}' if note else ''}\n\n"
            f"`{' '.join(['python -m pytest'] + sys.argv[1:])}` (AMAML_LAB_LATENCY={out}): from the input event "
            f"(key press, option chosen, button pressed) to the app's plotly graph drawn with new data, "
            f"{MOVES} moves a control, each after the page settled; median and worst of the moves, and the "
            f"medians of their parts: from the input to the app's update starting in the kernel, the update, "
            f"and from its end to the graph drawn (the browser's and the kernel's clocks are the machine's).\n\n"
        )
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(("\n" if path.stat().st_size else "") + head + table + "\n")


@pytest.mark.parametrize("name", list(WIDGET_NOTEBOOKS))
def test_notebook_in_jupyterlab(session, latencies, name, tmp_path):
    lab, browser = session
    shots = Path(os.environ.get("AMAML_LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.context.new_page()
    try:
        run_and_check(page, lab, name, WIDGET_NOTEBOOKS[name], shots / f"{name.split('_')[0]}.png")
        check_apps(page, lab, name, latencies)
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
