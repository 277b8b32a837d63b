"""Sphinx extension for the book (book/_config.yml): every plotly figure a notebook saved is drawn by plotly.js.

An executed cell's plotly output (``application/vnd.plotly.v1+json``: a ``go.Figure``, and every widget app,
whose bundle carries its figure beside the widget view) becomes an inert ``<script type="application/json">``
that ``static/amaml-plotly.js`` hands to ``Plotly.newPlot`` (frames, sliders and buttons included).  plotly.js is
the copy inside the installed ``plotly`` package, served with the site once (``_static/plotly.min.js``) and
loaded only by pages with a figure: nothing comes from a CDN, nothing needs a kernel.  The widget view itself is
dropped (its state needs a kernel).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATIC = Path(__file__).parent / "static"
DOCS = Path(__file__).resolve().parents[2] / "docs"
ANCHOR = re.compile(r'^<a id="([A-Za-z0-9_-]+)"></a>[ \t]*\n#+ (.+)$', re.M)
_IDS: dict | None = None
LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)(#[^)\s]*)?\)")  # a Markdown link's relative target
IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


def figure_html(figure: dict) -> str:
    """A figure as HTML: its JSON in an inert script element (``</`` escaped), for the loader to draw."""
    text = json.dumps(figure, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")
    return f'<div class="amaml-plotly"><script type="application/json" class="amaml-plotly-data">{text}</script></div>'


class PlotlyMime:
    """A myst-nb mime renderer (its plugin protocol): the plotly entry first for HTML, the widget view never."""

    mime_priority_overrides = [
        ("html", PLOTLY_MIME, 1),
        ("html", WIDGET_MIME, None),
        ("dirhtml", PLOTLY_MIME, 1),
        ("dirhtml", WIDGET_MIME, None),
    ]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME:
            return None
        from docutils import nodes

        figure = data.content if isinstance(data.content, dict) else json.loads(data.content)
        return [nodes.raw("", figure_html(figure), format="html", classes=["output", "amaml-plotly-output"])]


def _register() -> None:
    """Add :class:`PlotlyMime` to myst-nb's plugins (the list its entry-point loader caches)."""
    from myst_nb.core import render

    plugins = render.load_mime_renders()
    if PlotlyMime not in plugins:
        plugins.append(PlotlyMime)


def _page_scripts(app, pagename, templatename, context, doctree) -> None:
    """plotly.js and the loader, deferred (run in order once the page is parsed), on pages that draw a figure."""
    _unique_scripts(context)
    body = context.get("body", "")
    if "amaml-plotly-data" in body:
        app.add_js_file("plotly.min.js", loading_method="defer")
        app.add_js_file("amaml-plotly.js", loading_method="defer")


def heading_slug(title: str) -> str:
    """A heading's anchor (myst_heading_slug_func): the id a reference page gives it GitHub's way, with an
    ``<a id="term"></a>`` line right above it (so that the notebooks' ``glossary.md#term`` links resolve here as on
    GitHub), else GitHub's slug of its text."""
    from myst_parser.mdit_to_docutils.base import default_slugify

    global _IDS
    if _IDS is None:
        _IDS = {
            m.group(2).strip(): m.group(1)
            for path in sorted(DOCS.glob("*.md"))
            for m in ANCHOR.finditer(path.read_text(encoding="utf-8"))
        }
    return _IDS.get(title.strip()) or default_slugify(title)


def _outside_links(app, docname, source) -> None:
    """A link from a page to a file of the repository that is not a page of the book (results/README.md, a
    benchmark's notes) points at that file in the hosted repository (the one ``repository.url`` of _config.yml);
    images and links to pages stay as they are.  The file on disk is unchanged."""
    options = app.config.html_theme_options
    repo, branch = options.get("repository_url"), options.get("repository_branch", "main")
    root = Path(app.srcdir).resolve()
    here = (root / docname).parent

    def fix(m):
        target = (here / m.group(1)).resolve()
        if not target.exists() or not target.is_relative_to(root) or target.suffix.lower() in IMAGES:
            return m.group(0)
        rel = target.relative_to(root)
        if rel.suffix in (".md", ".ipynb") and rel.with_suffix("").as_posix() in app.env.found_docs:
            return m.group(0)
        return f"]({repo}/{'tree' if target.is_dir() else 'blob'}/{branch}/{rel.as_posix()}{m.group(2) or ''})"

    if repo:
        source[0] = LINK.sub(fix, source[0])


def _theme(app, config) -> None:
    """A light default mode (the theme logs a console error on a first visit without one) and a favicon (the
    browser asks for /favicon.ico otherwise: a 404 in the console)."""
    config.html_context = {**config.html_context, "default_mode": "light"}
    if not config.html_favicon:
        config.html_favicon = str(STATIC / "favicon.svg")


def _unique_scripts(context) -> None:
    """Each script once: sphinx-thebe adds its inline configuration twice under Jupyter Book 1.0, and the second
    ``const`` declaration throws in the browser (the copies differ only in a filename of None or "")."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""), str(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if "script_files" in context:
        context["script_files"][:] = kept


def _no_widget_state(app, env) -> None:
    """Leave out the widgets' saved state (myst-nb embeds it for a widget manager from a CDN, which the book does
    not load): megabytes a page (a FigureWidget's state carries its figure) that nothing reads."""
    for data in getattr(env, "nb_metadata", {}).values():
        data.get("js_files", {}).pop("ipywidgets_state", None)


def _static_files(app) -> None:
    import plotly

    app.config.html_static_path.append(str(STATIC))
    app.config.html_static_path.append(str(Path(plotly.__file__).parent / "package_data" / "plotly.min.js"))
    # at the site's root too: the redirecting index.html links no icon, so the browser asks for /favicon.ico
    app.config.html_extra_path.append(str(STATIC / "favicon.ico"))


def setup(app):
    _register()
    app.add_css_file("amaml-book.css")  # inline code wraps on a phone (static/amaml-book.css)
    app.connect("config-inited", _theme)
    app.connect("builder-inited", _static_files)
    app.connect("source-read", _outside_links)
    app.connect("env-updated", _no_widget_state)
    app.connect("html-page-context", _page_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
