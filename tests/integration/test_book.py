"""The static book (`make book`, book/): every page read in a real Chromium, as a reader without a kernel meets it.

The book is built here by Jupyter Book into a temporary folder (every notebook executed with FAST = True: a few
minutes), or read where ``AMAML_LAB_BOOK`` points (a built ``_build/html``).  A copy of it is served by python's
http.server, started here and stopped by process id; Chromium is the browser test's (tests/integration/test_browser.py),
started and stopped the same way.  Every page, at a laptop's and a phone's width (1280 and 390 px): no console
error, no failed request, every saved figure drawn (``.js-plotly-plot``) with traces that have points, its titles
inside it and no two of its texts over each other, no control off the screen, no results table left as raw
Markdown, no clamped value (a point drawn at the error ceiling) without its triangle and true value; at 390 px
nothing wider than the screen.  The kernel-free explorers (notebooks 02, 04, 08, 09): dragging a slider changes
traces in every panel, a button changes what is shown.  The checks must fail on a copy of a page with each of
those defects (:data:`MUTANTS`).  The site's size and each page's weight are printed; the site must stay under
:data:`SITE_BUDGET_MB`.  Without Chromium or jupyter-book the test is skipped, unless CI is set, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_browser import Browser, _free_port, _stop, _wait_http, find_chromium

from amaml_lab.viz.horizons import ERROR_CEILING

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
pytestmark = pytest.mark.book
SITE_BUDGET_MB = 30  # the whole site; plotly.js (4.6 MB) is served once and most of the rest is the theme's
EXPLORER_BUDGET_MB = 3  # the HTML of each page with a kernel-free explorer, its every state included
FIGURE = re.compile(r'(<script type="application/json" class="amaml-plotly-data">)(.*?)(</script>)', re.S)
ASSETS = ("_static", "_sources", "_images", "_downloads")
DESKTOP, PHONE = 1280, 390  # a laptop's window and a phone's screen, CSS pixels


def fail_or_skip(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"{why}; the book test must run under CI")
    pytest.skip(why)


# ---------------------------------------------------------------- the configuration (no build needed)
def book_config() -> dict:
    """The few settings of book/_config.yml the tests read (``repository: url``, ``branch``), without a YAML
    library: the file keeps them on lines of their own."""
    text = (BOOK / "_config.yml").read_text()
    block = text.split("\nrepository:", 1)[1].split("\n\n", 1)[0]
    return {k: re.search(rf"^\s+{k}:\s*(\S+)", block, re.M).group(1) for k in ("url", "branch")}


def toc_files() -> list[str]:
    return re.findall(r"^\s*(?:root|- file):\s*(\S+)", (BOOK / "_toc.yml").read_text(), re.M)


def test_the_book_has_every_notebook_and_reference_page():
    files = toc_files()
    notebooks = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    assert [f for f in files if f.startswith("notebooks/")] == notebooks
    for name in ("methods", "performance", "experiments", "exactness", "glossary"):
        assert f"docs/{name}" in files
    for f in files:
        assert any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb")), f


def test_every_hosted_address_comes_from_the_one_repository_url():
    """The README's Binder badge, the book's address and every link to the hosted repository, in the README, the
    book's page and the notebooks, derive from ``repository.url`` of book/_config.yml."""
    config = book_config()
    owner, name = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", config["url"]).groups()
    allowed = (
        config["url"],
        f"https://mybinder.org/v2/gh/{owner}/{name}/{config['branch']}",
        f"https://{owner}.github.io/{name}/",
        "https://mybinder.org/badge_logo.svg",
    )
    texts = {
        p: p.read_text() for p in [ROOT / "README.md", BOOK / "intro.md", *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    }
    found = []
    for path, text in texts.items():
        for url in re.findall(r"https://(?:github\.com|mybinder\.org|[\w-]+\.github\.io)[^\s)\"'>\]]*", text):
            found.append(url)
            assert url.startswith(allowed), f"{path.name}: {url} does not come from repository.url {config['url']}"
    readme = texts[ROOT / "README.md"]
    assert f"https://{owner}.github.io/{name}/" in readme, "the README links the published book"
    assert "_build/html/index.html" in readme and "make book" in readme
    assert "repository.url" in readme, "the README names the setting the addresses come from"
    tour = texts[ROOT / "notebooks" / "00_tour.ipynb"]
    assert f"https://{owner}.github.io/{name}/" in tour and "make book" in tour
    assert (ROOT / ".github" / "workflows" / "book.yml").is_file()


# ---------------------------------------------------------------- the built site, served
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("AMAML_LAB_BOOK")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"AMAML_LAB_BOOK={given}: no index.html there"
        return path
    tool = Path(sys.executable).parent / "jupyter-book"
    if not tool.is_file():
        fail_or_skip("jupyter-book is not installed (make book installs the book extra)")
    out = tmp_path_factory.mktemp("book")
    started = time.perf_counter()
    log = out / "build.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            [
                str(tool),
                "build",
                str(ROOT),
                "--config",
                str(BOOK / "_config.yml"),
                "--toc",
                str(BOOK / "_toc.yml"),
                "--path-output",
                str(out),
                "--all",
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=3600)
        finally:
            _stop(proc)  # the kernels it started, too
    print(f"\nthe book built in {time.perf_counter() - started:.0f} s")
    assert code == 0, f"the book's build failed:\n{log.read_text()[-4000:]}"
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def served(site, tmp_path_factory):
    """(base URL, the served copy of the site): mutated pages may be written into the copy."""
    copy = tmp_path_factory.mktemp("served") / "html"
    shutil.copytree(site, copy)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(copy)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/index.html", proc, "http.server")
        yield f"http://127.0.0.1:{port}", copy
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    path = find_chromium()
    if path is None:
        fail_or_skip("no Chromium found (apt-get install -y chromium, or set CHROMIUM=/path/to/chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        fail_or_skip("playwright is not installed (the test extra)")
    started = Browser(path, tmp_path_factory.mktemp("chromium"))
    yield started
    started.stop()


def pages(site: Path) -> list[str]:
    """Every page of the site (its HTML files, the assets' folders left out), relative to its root."""
    return sorted(
        p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ASSETS
    )


# ---------------------------------------------------------------- reading a page
FIGURES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const data = gd.data || [], layout = gd.layout || {};
  const size = v => !v ? 0 : v.length !== undefined ? v.length : (v.bdata || '').length;  // a typed array's spec
  return {traces: data.length, points: data.reduce((n, t) => n + size(t.x) + size(t.y) + size(t.z), 0),
          sliders: (layout.sliders || []).length, menus: (layout.updatemenus || []).length,
          frames: (gd._transitionData && gd._transitionData._frames || []).length};
})"""
# the page's text outside code blocks: a results table that reached the page as raw Markdown shows its |---| rule
RAW_TABLE_JS = """() => { const b = document.body.cloneNode(true);
  b.querySelectorAll('pre, code, script, style').forEach(e => e.remove()); return b.textContent; }"""
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
# every point drawn at the error ceiling (a clamped value), in the figure and in each of its frames, must be a
# triangle with its true value (customdata) for the hover: else a reader takes it for an error of 10,000
CLAMPED_JS = """ceiling => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap((gd, g) => {
  const frames = (gd._transitionData && gd._transitionData._frames) || [];
  const states = [['data', gd.data || []]].concat(frames.map(f => ['frame ' + f.name, f.data || []]));
  return states.flatMap(([where, traces]) => traces.flatMap(t => {
    const ys = Array.isArray(t.y) ? t.y : [], symbol = (t.marker || {}).symbol, custom = t.customdata || [];
    return ys.flatMap((y, i) => {
      const s = String(Array.isArray(symbol) ? symbol[i] : symbol);
      return y === ceiling && (!s.includes('triangle') || !(Number(custom[i]) > ceiling))
        ? [`figure ${g + 1}, ${where}: ${t.name} point ${i} at the ceiling drawn as ${s}, hover ${custom[i]}`] : [];
    });
  }));
})"""
# every figure's titles and annotations inside the figure (a title wider than its panel runs off its left edge), and
# no two of its texts (titles, panel titles, axis titles, legend entries, the controls' labels) over each other
TITLES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap((gd, g) => {
  const box = gd.getBoundingClientRect(), name = t => JSON.stringify(t.text.slice(0, 40));
  const sel = '.gtitle, .annotation-text, .g-xtitle text, .g-ytitle text, .legendtext, .slider-label, '
            + '.slider-current-value, .updatemenu-item-text';
  const texts = Array.from(gd.querySelectorAll(sel))
    .map(t => ({text: t.textContent, r: t.getBoundingClientRect()})).filter(t => t.text && t.r.width > 0);
  const out = texts.filter(t => t.r.left < box.left - 1 || t.r.right > box.right + 1)
    .map(t => `figure ${g + 1}: ${name(t)} from ${Math.round(t.r.left - box.left)} to `
              + `${Math.round(t.r.right - box.left)} px of ${Math.round(box.width)}`);
  const meet = (a, b) => Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left) > 2
                         && Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top) > 2;
  texts.forEach((a, i) => texts.slice(i + 1).forEach(b => {
    if (meet(a, b)) out.push(`figure ${g + 1}: ${name(a)} over ${name(b)}`); }));
  return out; })"""
# every control of every figure (a drop-down's header or a button, a slider's rail and grip) within the screen
CONTROLS_JS = """() => { const width = document.documentElement.clientWidth;
  return Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap((gd, g) => Array.from(gd.querySelectorAll(
      '.updatemenu-header-group, .updatemenu-button, .slider-rail-rect, .slider-grip-rect'))
    .map(e => ({name: e.getAttribute('class'), r: e.getBoundingClientRect()}))
    .filter(e => e.r.width > 0 && (e.r.left < 0 || e.r.right > width + 1))
    .map(e => `figure ${g + 1}: ${e.name} at ${Math.round(e.r.left)} to ${Math.round(e.r.right)} px of ${width}`)); }"""
STATE_JS = """gd => (gd.data || []).map(t => [t.xaxis || 'x', JSON.stringify([t.x, t.y, t.z, t.visible, t.name])])"""


def open_page(page, url: str, timeout: float = 90) -> tuple[list, list]:
    """Open ``url`` and wait until every saved figure is drawn; (problems, the figures' summaries)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    saved = page.locator("script.amaml-plotly-data").count()
    deadline = time.time() + timeout
    while page.locator(".js-plotly-plot").count() < saved and time.time() < deadline and not problems:
        time.sleep(0.25)
    page.wait_for_timeout(300)  # a last console message
    figures = page.evaluate(FIGURES_JS)
    raw = RAW_TABLE.search(page.evaluate(RAW_TABLE_JS))
    if raw:
        problems.append(f"a Markdown table shown as raw text ({raw.group(0)!r}): render it as a table")
    problems += [f"a title outside its figure or over another text: {t}" for t in page.evaluate(TITLES_JS)]
    problems += [f"a control off the screen: {c}" for c in page.evaluate(CONTROLS_JS)]
    clamped = page.evaluate(CLAMPED_JS, ERROR_CEILING)
    if clamped:
        problems.append(f"{len(clamped)} clamped values without their mark, the first: {'; '.join(clamped[:3])}")
    if len(figures) != saved:
        problems.append(f"{saved} figures saved, {len(figures)} drawn")
    for i, f in enumerate(figures):
        if not f["traces"] or not f["points"]:
            problems.append(f"figure {i + 1} drawn without {'traces' if not f['traces'] else 'points'}")
    return problems, figures


def _panels(state) -> dict:
    out: dict = {}
    for axis, value in state:
        out.setdefault(axis, []).append(value)
    return out


def drag_slider(page, graph: int, k: int) -> list[str]:
    """Drag slider ``k`` of figure ``graph`` to its far end; what did not follow (empty: every panel changed)."""
    gd = page.locator(".js-plotly-plot").nth(graph)
    steps = gd.evaluate(f"gd => (gd.layout.sliders[{k}].steps || []).length")
    active = gd.evaluate(f"gd => gd.layout.sliders[{k}].active || 0")
    if steps < 2:
        return [f"slider {k + 1} has {steps} steps"]
    before = gd.evaluate(STATE_JS)
    gd.locator(".slider-grip-rect").nth(k).scroll_into_view_if_needed()
    rail = gd.locator(".slider-rail-rect").nth(k).bounding_box()
    grip = gd.locator(".slider-grip-rect").nth(k).bounding_box()
    to = rail["x"] + (2 if active >= steps / 2 else rail["width"] - 2)
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move((grip["x"] + to) / 2, rail["y"] + rail["height"] / 2, steps=5)
    page.mouse.move(to, rail["y"] + rail["height"] / 2, steps=5)
    page.mouse.up()
    deadline = time.time() + 10
    while gd.evaluate(STATE_JS) == before and time.time() < deadline:
        time.sleep(0.2)
    page.wait_for_timeout(500)  # every frame's redraw
    after = gd.evaluate(STATE_JS)
    problems = (
        [] if gd.evaluate(f"gd => gd.layout.sliders[{k}].active || 0") != active else [f"slider {k + 1} did not move"]
    )
    old, new = _panels(before), _panels(after)
    still = [axis for axis in old if old[axis] == new.get(axis)]
    return problems + [f"slider {k + 1} left panel {axis} as it was" for axis in still]


def press_button(page, graph: int) -> list[str]:
    """Press a button of figure ``graph`` other than the active one; a problem if nothing changed."""
    gd = page.locator(".js-plotly-plot").nth(graph)
    active = gd.evaluate("gd => gd.layout.updatemenus[0].active || 0")
    before = gd.evaluate(STATE_JS)
    gd.locator(".updatemenu-button").nth(0 if active else 1).click()
    page.wait_for_timeout(500)
    return [] if gd.evaluate(STATE_JS) != before else ["a button changed nothing"]


def explorers(page, figures) -> list[str]:
    """Move every kernel-free explorer on the page: each slider dragged, a button pressed."""
    problems = []
    for i, f in enumerate(figures):
        for k in range(f["sliders"]):
            problems += [f"figure {i + 1}: {p}" for p in drag_slider(page, i, k)]
        if f["menus"]:
            problems += [f"figure {i + 1}: {p}" for p in press_button(page, i)]
    return problems


def weight(site: Path, html: str) -> int:
    """Bytes a first visit of a page loads: its HTML and every file of the site its scripts and styles name."""
    text = (site / html).read_text(errors="replace")
    names = set(re.findall(r'(?:src|href)="([^"#?]+\.(?:js|css|svg|png|woff2?))', text))
    files = {(site / html).parent.joinpath(n).resolve() for n in names if not n.startswith("http")}
    return (site / html).stat().st_size + sum(f.stat().st_size for f in files if f.is_file())


# ---------------------------------------------------------------- the tests
def test_every_page_draws_its_figures_without_errors(site, served, browser):
    base, _ = served
    rows, problems = [], []
    for name in pages(site):
        for width in (DESKTOP, PHONE):  # a laptop's window (both sidebars shown: the narrowest column) and a phone
            page = browser.context.new_page()
            try:
                page.set_viewport_size({"width": width, "height": 900})
                found, figures = open_page(page, f"{base}/{name}")
                problems += [f"{name} at {width} px: {p}" for p in found]
            finally:
                page.close()
        rows.append(
            (name, (site / name).stat().st_size, weight(site, name), len(figures), sum(f["sliders"] for f in figures))
        )
    total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    print(
        f"\nthe site: {total / 1e6:.1f} MB in {sum(1 for f in site.rglob('*') if f.is_file())} files "
        f"(budget {SITE_BUDGET_MB} MB)\n{'page':52s} {'HTML MB':>8s} {'first visit MB':>15s} figures sliders"
    )
    for name, html, first, n, sliders in rows:
        print(f"{name:52s} {html / 1e6:8.2f} {first / 1e6:15.2f} {n:7d} {sliders:7d}")
    assert not problems, "\n".join(problems)
    assert total < SITE_BUDGET_MB * 1e6, f"the site is {total / 1e6:.1f} MB, over its {SITE_BUDGET_MB} MB budget"
    assert any(n for name, _, _, n, _ in rows if name.startswith("notebooks/")), "no figure on any notebook page"


@pytest.mark.parametrize(
    "name,sliders,frames",
    [
        ("notebooks/02_adjoint_vs_unrolled.html", 1, True),
        ("notebooks/04_baselines.html", 4, False),  # its sliders restyle their own traces: no frames
        ("notebooks/08_when_does_a_long_loop_pay_off.html", 2, True),
        ("notebooks/09_exact_or_first_order_through_a_long_loop.html", 1, True),
    ],
)
def test_the_kernel_free_explorers_move_every_panel(site, served, browser, name, sliders, frames):
    base, _ = served
    page = browser.context.new_page()
    try:
        problems, figures = open_page(page, f"{base}/{name}")
        static = [f for f in figures if f["sliders"]]
        assert static and static[0]["sliders"] == sliders and (static[0]["frames"] > 1) == frames, (
            f"{name}: no kernel-free explorer with {sliders} slider(s) (frames: {frames}): {figures}"
        )
        problems += explorers(page, figures)
    finally:
        page.close()
    assert not problems, "\n".join(problems)
    html = (site / name).stat().st_size
    assert html < EXPLORER_BUDGET_MB * 1e6, f"{name}: {html / 1e6:.2f} MB, over {EXPLORER_BUDGET_MB} MB"


WIDE_JS = """() => { const W = document.documentElement.clientWidth, out = [];
  const boxed = e => {  // inside a box that scrolls or clips on its own (a wide table, a code block): fine
    for (let p = e.parentElement; p; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (['auto', 'scroll', 'hidden'].includes(x) && p.getBoundingClientRect().right <= W + 1) return true;
    }
    return false; };
  for (const e of document.querySelectorAll('article *')) {
    const r = e.getBoundingClientRect(), text = (e.textContent || '').trim().slice(0, 40);
    if (r.width > 0 && r.right > W + 1 && !boxed(e)) out.push(`${e.tagName} "${text}" to ${Math.round(r.right)} px`);
  }
  return {width: W, page: document.documentElement.scrollWidth, wide: out.slice(0, 3)}; }"""


def too_wide_for_a_phone(page, url: str) -> str | None:
    """What makes the page at ``url`` wider than a phone's screen (the reader scrolls sideways), or None."""
    page.set_viewport_size({"width": PHONE, "height": 900})
    page.goto(url, wait_until="load")
    page.wait_for_timeout(500)
    found = page.evaluate(WIDE_JS)
    if found["page"] <= found["width"]:
        return None
    return f"{found['page']} px wide at {found['width']} px: {'; '.join(found['wide']) or 'outside the article'}"


def test_every_page_fits_a_phones_width(site, served, browser):
    """At 390 px no page is wider than the screen: long inline code wraps (book/_ext/static/amaml-book.css), a
    wide table or figure scrolls or shrinks in its own box.  Before that rule pages 02, 04, 08 and 09 were 403 to
    513 px wide."""
    base, copy = served
    page = browser.context.new_page()
    try:
        problems = [f"{name}: {why}" for name in pages(site) if (why := too_wide_for_a_phone(page, f"{base}/{name}"))]
        broken = copy / "notebooks" / "02_mutant_wide.html"  # the check must see a page that does not fit
        text = (copy / "notebooks" / "02_adjoint_vs_unrolled.html").read_text()
        wide = '<p><span style="display:inline-block;width:600px">a box wider than a phone</span></p>'
        broken.write_text(text.replace("</article>", wide + "</article>", 1))
        caught = too_wide_for_a_phone(page, f"{base}/notebooks/{broken.name}")
    finally:
        page.close()
    assert not problems, "\n".join(problems)
    assert caught and "a box wider than a phone" in caught, f"a 600 px box went unnoticed: {caught}"


def _mutate(text: str, which, change) -> str:
    """``text`` with ``change`` applied to the JSON of the saved figures ``which(figure)`` selects."""

    def one(m):
        figure = json.loads(m.group(2))
        if which(figure):
            change(figure)
        return m.group(1) + json.dumps(figure).replace("</", "<\\/") + m.group(3)

    return FIGURE.sub(one, text)


def _emptied(figure):
    for trace in figure["data"]:
        for key in ("x", "y", "z"):
            trace.pop(key, None)


def _unmarked(figure):
    """Every marker drawn as a plain circle, the true values gone: the clamped points look like any other."""
    for trace in figure["data"] + [t for f in figure.get("frames", []) for t in f["data"]]:
        trace.pop("customdata", None)
        if isinstance((trace.get("marker") or {}).get("symbol"), list):
            trace["marker"]["symbol"] = ["circle"] * len(trace["marker"]["symbol"])


def _stacked_notes(figure):
    """Every annotation (a panel's title) moved onto the first one."""
    notes = figure["layout"]["annotations"]
    for note in notes[1:]:
        note.update(x=notes[0]["x"], y=notes[0]["y"], xanchor=notes[0].get("xanchor"), yanchor=notes[0].get("yanchor"))


MUTANTS = {  # name -> (which figures, what is done to them, what the check must say)
    "data-emptied": (lambda f: True, _emptied, "without points"),
    "no-traces": (lambda f: True, lambda f: f.update(data=[]), "without traces"),
    "slider-steps-removed": (
        lambda f: f["layout"].get("sliders"),
        lambda f: [s.update(steps=[]) for s in f["layout"]["sliders"]],
        "steps|did not move",
    ),
    "frames-removed": (lambda f: f.get("frames"), lambda f: f.update(frames=[]), "as it was"),
    "clamp-marks-removed": (lambda f: True, _unmarked, "clamped values without their mark"),
    "title-unbreakable": (  # no space to wrap at: wider than any figure
        lambda f: True,
        lambda f: f["layout"].update(title={"text": "W" * 150}),
        "title outside its figure",
    ),
    "buttons-off-screen": (  # a row of buttons longer than any screen
        lambda f: f["layout"].get("updatemenus"),
        lambda f: [
            b.update(label="a button label far too long " * 3) for m in f["layout"]["updatemenus"] for b in m["buttons"]
        ],
        "control off the screen",
    ),
    "titles-on-each-other": (  # the panels' titles drawn at one place
        lambda f: len(f["layout"].get("annotations", [])) > 1,
        _stacked_notes,
        " over ",
    ),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_checks_fail_on_a_broken_page(served, browser, mutant):
    """A copy of notebook 02's page, its figures' data emptied, the static explorer's slider steps or frames
    removed: the same checks must report it."""
    base, copy = served
    which, change, expected = MUTANTS[mutant]
    original = copy / "notebooks" / "02_adjoint_vs_unrolled.html"
    broken = original.with_name(f"02_mutant_{mutant}.html")
    text = original.read_text()
    mutated = _mutate(text, which, change)
    assert mutated != text, f"{mutant}: nothing to mutate"
    broken.write_text(mutated)
    page = browser.context.new_page()
    try:
        problems, figures = open_page(page, f"{base}/notebooks/{broken.name}")
        problems += explorers(page, figures)
    finally:
        page.close()
    assert any(re.search(expected, p) for p in problems), f"{mutant}: the checks did not notice: {problems}"


def test_a_markdown_table_left_as_raw_text_is_caught(served, browser):
    """A copy of notebook 02's page with a results table as raw Markdown in a paragraph (what myst-nb's CommonMark
    rendering made of display(Markdown(table))): the page check reports it."""
    base, copy = served
    original = copy / "notebooks" / "02_adjoint_vs_unrolled.html"
    broken = original.with_name("02_mutant_raw_table.html")
    text = original.read_text()
    raw = "<p>| method | nRMSE | |---|---:| | maml | 0.25 |</p>"
    broken.write_text(text.replace("</main>", raw + "</main>", 1) if "</main>" in text else text + raw)
    page = browser.context.new_page()
    try:
        problems, _ = open_page(page, f"{base}/notebooks/{broken.name}")
    finally:
        page.close()
    assert any("raw text" in p for p in problems), problems
