"""The glossary (docs/glossary.md) is linked at the first use of each term in every notebook
(tools/glossary_links.py), and every anchor the links use exists."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("glossary_links", ROOT / "tools" / "glossary_links.py")
glossary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glossary)


def test_every_notebook_links_each_term_at_its_first_use():
    assert glossary.scan(fix=False) == []


def test_every_anchor_exists():
    assert {anchor for _, anchor in glossary.TERMS} <= glossary.anchors()


def test_first_use_skips_code_headings_and_other_links_and_sees_a_missing_link():
    text = "# HVP in a heading\n`HVP` in code, [an HVP elsewhere](x.md), then an HVP in prose"
    found, linked = glossary.first_use(text, r"HVPs?\b", "hessian-vector-product-hvp")
    assert found.start() == text.rindex("HVP") and not linked
    linked_text = "a [HVP](../docs/glossary.md#hessian-vector-product-hvp) and an HVP"
    found, linked = glossary.first_use(linked_text, r"HVPs?\b", "hessian-vector-product-hvp")
    assert linked and found.start() == 3
    wrong_anchor = "a [HVP](../docs/glossary.md#comln) and an HVP"
    found, linked = glossary.first_use(wrong_anchor, r"HVPs?\b", "hessian-vector-product-hvp")
    assert not linked and found.start() == wrong_anchor.rindex("HVP")
