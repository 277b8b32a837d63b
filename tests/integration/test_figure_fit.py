"""Every explorer's figure read in a real Chromium: no title, panel title or axis title wider than the figure or drawn
past its edge, no two texts over each other, every control on the screen (tests/integration/test_book.py's checks).
The book's figures (the kernel-free explorers) at a desktop column's width and a phone's (390 px), each drawn alone
on a page by the book's own loader (book/_ext/static/amaml-plotly.js, which stacks the panels on a narrow screen) as
the book embeds it; the apps' figures, which JupyterLab shows, at the desktop width."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.io as pio
import pytest
from test_book import CONTROLS_JS, TITLES_JS  # every control on the screen; titles inside, none over another
from test_browser import Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = {"desktop": 860, "phone": 390}  # the book's content column at a desktop width, and a phone's screen


def _figures() -> dict:
    """{name: (figure, the widths it is read at)}: the explorers as the book shows them and as JupyterLab does."""
    from amaml_lab import widgets
    from amaml_lab.studies import directions, payoff
    from amaml_lab.studies.committed import RESULTS
    from amaml_lab.tasks.examples import build_task
    from amaml_lab.viz import static
    from amaml_lab.widgets.directions import DirectionsExplorer
    from amaml_lab.widgets.payoff import PayoffExplorer

    horizon = widgets.HorizonExplorer(step_sizes=(0.01, 0.03), seed=0)
    base = widgets.BaselineExplorer(*build_task(8, "float64", "cpu", 4, 0), steps_list=(4, 8))
    pay = PayoffExplorer(payoff.committed(), "Sinusoid-10-10", 0.0, seed=0)
    found = directions.diagnoses(RESULTS / "horizon", "CosMixture-50-50")
    v = base.values()
    book, lab = tuple(WIDTHS), ("desktop",)
    return {
        "horizon (book)": (static.horizon_static_figure(horizon.data, horizon.cost), book),
        "horizon (app)": (horizon.figure, lab),
        "baselines (book)": (
            static.baselines_static_figure(base.table, base.lams, v["lam"], v["cg_steps"], v["truncate"], v["steps"]),
            book,
        ),
        "baselines (app)": (base.figure, lab),
        "payoff (book)": (static.payoff_static_figure(pay.view), book),
        "payoff (app)": (pay.figure, lab),
        "directions (book)": (static.directions_static_figure(found), book),
        "directions (app)": (DirectionsExplorer(found).figure, lab),
    }


def _page(fig, folder: Path) -> Path:
    """An HTML page holding ``fig`` as the book embeds it, drawn by the book's loader."""
    import importlib.util

    import plotly

    spec = importlib.util.spec_from_file_location("amaml_book", ROOT / "book" / "_ext" / "amaml_book.py")
    book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book)
    figure = json.loads(pio.to_json(fig, validate=False))
    figure["layout"].pop("width", None)  # as wide as the column, as the book's figures are
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    loader = ROOT / "book" / "_ext" / "static" / "amaml-plotly.js"
    page = folder / "figure.html"
    page.write_text(
        '<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<script src="{plotly_js.as_uri()}"></script></head><body style="margin:0;padding:0 12px">'
        f'{book.figure_html(figure)}<script src="{loader.as_uri()}"></script></body></html>'
    )
    return page


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    import os

    path = find_chromium()
    if path is None:
        why = "no Chromium found (apt-get install -y chromium, or set CHROMIUM=/path/to/chromium)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    started = Browser(path, tmp_path_factory.mktemp("chromium"))
    yield started
    started.stop()


@pytest.mark.integration  # starts Chromium
def test_every_explorers_titles_and_controls_fit_on_a_desktop_and_a_phone(browser, tmp_path):
    problems = []
    for name, (fig, devices) in _figures().items():
        html = _page(fig, tmp_path)
        for device in devices:
            width = WIDTHS[device]
            page = browser.context.new_page()
            try:
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(html.as_uri(), wait_until="load")
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
                page.wait_for_timeout(300)
                problems += [f"{name}, {device} ({width} px): {p}" for p in page.evaluate(TITLES_JS)]
                problems += [f"{name}, {device}: off-screen {p}" for p in page.evaluate(CONTROLS_JS)]
                # stacked on a phone, the panels a note calls left and right are one above the other: a line says so
                notes = page.locator(".amaml-stacked-note").count()
                if notes != (device == "phone" and "(book)" in name):
                    problems.append(f"{name}, {device}: {notes} lines saying the panels are stacked")
            finally:
                page.close()
    assert not problems, "what does not fit the screen, or is not said:\n" + "\n".join(problems)


# ---------------------------------------------------------------- moves in the page: how long until drawn
LISTEN_JS = """gd => { window.__moves = []; const mark = () => window.__moves.push(performance.now());
  ['plotly_afterplot', 'plotly_animated', 'plotly_restyle', 'plotly_redraw'].forEach(e => gd.on(e, mark));
  document.addEventListener('mousedown', () => { window.__down = performance.now(); window.__moves = []; }, true); }"""
TIMES_JS = "() => ({down: window.__down, marks: window.__moves.slice()})"
POSITIONS = (1.0, 0.0, 0.5, 0.25, 0.75, 0.1)  # where each move clicks, as a fraction of the slider's steps


def _moves(page, k: int) -> tuple[list, int]:
    """Click slider ``k`` at each of :data:`POSITIONS`: ((first redraw, last redraw) in ms after each click that
    redrew, the number of clicks that move it: those landing on another step than the active one)."""
    at = page.evaluate(f"() => document.querySelector('.js-plotly-plot').layout.sliders[{k}].active || 0")
    n = page.evaluate(f"() => document.querySelector('.js-plotly-plot').layout.sliders[{k}].steps.length")
    rail = page.locator(".slider-rail-rect").nth(k)
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    out, expected = [], 0
    for f in POSITIONS:  # a click on the rail moves the grip to the nearest step
        page.mouse.click(box["x"] + 8 + f * (box["width"] - 16), box["y"] + box["height"] / 2)
        page.wait_for_timeout(1500)  # every redraw a move causes, and a quiet moment after
        step = round(f * (n - 1))
        expected, at = expected + (step != at), step
        t = page.evaluate(TIMES_JS)
        if t["marks"]:
            out.append((t["marks"][0] - t["down"], t["marks"][-1] - t["down"]))
    return out, expected


def _measure(figures: dict, browser, tmp_path, rows: list, problems: list) -> None:
    """Every slider of every book explorer moved at each width: a row per slider and width into ``rows``."""
    import statistics

    for name, (fig, devices) in figures.items():
        if "(book)" not in name:
            continue
        html = _page(fig, tmp_path)
        for device in devices:
            page = browser.context.new_page()
            try:
                page.set_viewport_size({"width": WIDTHS[device], "height": 900})
                page.goto(html.as_uri(), wait_until="load")
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
                page.evaluate(LISTEN_JS, page.locator(".js-plotly-plot").element_handle())
                for k in range(page.evaluate("() => document.querySelector('.js-plotly-plot').layout.sliders.length")):
                    label = page.evaluate(f"() => document.querySelector('.js-plotly-plot').layout.sliders[{k}].name")
                    times, expected = _moves(page, k)
                    if len(times) < expected:
                        problems.append(f"{name}, {device}, {label}: {len(times)} of {expected} moves redrew")
                    if times:
                        first, last = zip(*times)
                        rows.append(
                            (
                                name,
                                device,
                                label,
                                statistics.median(first),
                                statistics.median(last),
                                max(last),
                                len(times),
                            )
                        )
            finally:
                page.close()


@pytest.mark.integration  # starts Chromium
def test_the_books_explorers_redraw_on_every_slider_move(browser, tmp_path):
    """Every slider of every kernel-free explorer, clicked at six positions, on a desktop column and a phone: each
    move redraws the figure.  The times (input event to the first and to the last redraw) are printed and, with
    AMAML_LAB_LATENCY set (benchmarks/browser_latency.sh), appended to that file as a table; they are not asserted."""
    import os
    import platform
    import time

    rows, problems = [], []
    figures = _figures()  # built before the measuring starts (seconds of CPU)
    flag = Path(os.environ["AMAML_LAB_MEASURING"]) if os.environ.get("AMAML_LAB_MEASURING") else None
    if flag is not None:  # benchmarks/browser_latency.sh quiets the machine while it exists
        flag.touch()
        time.sleep(1)
    try:
        _measure(figures, browser, tmp_path, rows, problems)
    finally:
        if flag is not None:
            flag.unlink(missing_ok=True)
    table = "\n".join(
        [
            "| explorer | screen | slider | first redraw, median (ms) | settled, median (ms) | settled, worst (ms)"
            " | moves |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        + [f"| {n} | {d} | {s.strip(': ')} | {a:.0f} | {b:.0f} | {c:.0f} | {m} |" for n, d, s, a, b, c, m in rows]
    )
    print("\n" + table)
    out = os.environ.get("AMAML_LAB_LATENCY")
    if out:
        note = os.environ.get("AMAML_LAB_LATENCY_NOTE", "")
        with open(out, "a") as f:
            f.write(
                f"\n## The book's kernel-free explorers, in the page: {time.strftime('%Y-%m-%d %H:%M')}, "
                f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{', ' + note if note else ''}\n\n"
                "Command: `NOTE=... benchmarks/browser_latency.sh python -m pytest -q -p no:cacheprovider"
                " tests/integration/test_figure_fit.py -k redraw`. "
                "From the click on a slider's step to the figure's first and last redraw (plotly's afterplot, "
                f"animated and restyle events), each figure drawn by the book's loader at {WIDTHS['desktop']} px"
                f" (desktop) and {WIDTHS['phone']} px (phone: panels stacked).\n\n{table}\n"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.integration  # starts Chromium
def test_a_method_hidden_in_the_legend_stays_hidden_when_a_button_shows_another_set(browser, tmp_path):
    """The book's horizon explorer: hide fomaml in the legend, press another step size and solver's button: fomaml
    stays hidden in the set now shown (the loader re-hides what meta.legend names), and the other methods show."""
    from amaml_lab import widgets
    from amaml_lab.viz import static

    horizon = widgets.HorizonExplorer(step_sizes=(0.01, 0.03), seed=0)
    html = _page(static.horizon_static_figure(horizon.data, horizon.cost), tmp_path)
    page = browser.context.new_page()
    state = """() => { const gd = document.querySelector('.js-plotly-plot'), out = {};
      gd.data.filter(t => t.meta && t.visible !== false).forEach(t => { out[t.meta.legend] = t.visible; });
      return out; }"""
    try:
        page.set_viewport_size({"width": WIDTHS["desktop"], "height": 1400})
        page.goto(html.as_uri(), wait_until="load")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(800)  # the loader's handlers are set once the figure is drawn
        item = page.locator(".legend .traces").filter(has_text="fomaml").first
        item.locator(".legendtoggle").click()
        page.wait_for_timeout(1500)  # plotly waits to tell a click from a double click
        assert page.evaluate(state)["fomaml"] == "legendonly"
        active = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.updatemenus[0].active")
        page.locator(".updatemenu-button").nth(0 if active else 1).click()
        page.wait_for_timeout(1500)
        shown = page.evaluate(state)
        now = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.updatemenus[0].active")
        page.locator(".legend .traces").filter(has_text="fomaml").first.locator(".legendtoggle").click()
        page.wait_for_timeout(1500)
        again = page.evaluate(state)  # shown again when the reader asks for it
    finally:
        page.close()
    assert now != active, "the button did not switch the set"
    assert shown["fomaml"] == "legendonly", shown
    assert shown["reptile"] is True and shown["model"] is True, shown
    assert again["fomaml"] is True, again
