"""The glossary (docs/glossary.md) linked at the first use of each term in every notebook.

``python tools/glossary_links.py`` links each term's first use (in a markdown cell, outside code spans, links
and headings) to its glossary entry, in place; ``--check`` lists the first uses that are not links and exits 1
if there are any (tests/integration/test_notebooks.py runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = "../docs/glossary.md"
# (pattern, anchor): the jargon a learner meets before it is explained, most specific first
TERMS = [
    (r"Hessian-vector products?|HVPs?\b", "hessian-vector-product-hvp"),
    (r"\bproximal\b", "proximal-term"),
    (r"\bdopri5\b", "ode-solvers"),
    (r"forward(?:-mode)? sensitivities", "forward-sensitivities"),
    (r"\brevolve\b", "checkpointing"),
    (r"\bCOMLN\b", "comln"),
    (r"\bgradient flow\b", "gradient-flow"),
    (r"\bmeta-gradients?\b", "meta-gradient"),
    (r"\bFOMAML\b", "fomaml"),
    (r"\bReptile\b", "reptile"),
    (r"\biMAML\b", "imaml"),
    (r"\bback-solving\b", "back-solving"),
    (r"\bcheckpoint(?:s|ing|ed)?\b", "checkpointing"),
    (r"λmax", "stiffness"),
    (r"\bconjugate gradient\b", "conjugate-gradient"),
    (r"\bsupport (?:set|loss|points)\b", "support-and-query-sets"),
]
IGNORE = re.compile(r"`[^`]*`|<[^>]+>|^#.*$|\]\([^)]*\)", re.M)  # code spans, tags, headings, link targets
LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def first_use(text: str, pattern: str, anchor: str):
    """The first use of ``pattern`` in prose (code spans, tags, headings and link targets do not count), and
    whether it is already the glossary's link for ``anchor``: (match, linked), or None."""
    ignored = [(m.start(), m.end()) for m in IGNORE.finditer(text)]
    links = [(m.start(1), m.end(1), m.group(2)) for m in LINK.finditer(text)]
    for found in re.finditer(pattern, text):
        if any(a <= found.start() < b for a, b in ignored):
            continue
        inside = [url for a, b, url in links if a <= found.start() and found.end() <= b]
        if inside and not inside[0].endswith(f"glossary.md#{anchor}"):
            continue  # part of another link's text
        return found, bool(inside)
    return None


def _notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def scan(fix: bool) -> list[str]:
    """The first uses that are not glossary links; with ``fix``, link them and write the notebooks."""
    missing = []
    for path in _notebooks():
        nb = nbformat.read(path, 4)
        changed = False
        for pattern, anchor in TERMS:
            for cell in nb.cells:
                hit = first_use(cell.source, pattern, anchor) if cell.cell_type == "markdown" else None
                if hit is None:
                    continue
                found, linked = hit
                if not linked and fix:
                    s = cell.source
                    cell.source = f"{s[: found.start()]}[{found.group(0)}]({GLOSSARY}#{anchor}){s[found.end() :]}"
                    changed = True
                elif not linked:
                    missing.append(f"{path.name}: the first '{found.group(0)}' is not linked to {GLOSSARY}#{anchor}")
                break
        if changed:
            nbformat.write(nb, path)
    return missing


def anchors() -> set:
    return set(re.findall(r'<a id="([^"]+)"></a>', (ROOT / "docs" / "glossary.md").read_text()))


if __name__ == "__main__":
    problems = scan(fix="--check" not in sys.argv[1:])
    print("\n".join(problems) or "every term's first use links the glossary")
    sys.exit(1 if problems else 0)
