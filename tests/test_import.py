"""Every import path a reader meets (the notebooks, the book, the README, docs/ and the scripts' ``python -m``)
is pinned here and imports without a warning; every old path of amaml_lab/moved.py still imports, warning with
its new one.  A change of a path the docs use fails here until the pin (and the docs) follow."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PINNED = {  # module: the names readers import from it ("" for ``import module``)
    "amaml_lab": {"", "measure", "meta_gradient", "module_params", "task_losses", "viz"},
    "amaml_lab.bench": {"compile_cost"},
    "amaml_lab.models": {"mlp"},
    "amaml_lab.studies": {"committed", "payoff", "directions", "diagnosis"},
    "amaml_lab.studies.committed": {"RESULTS"},
    "amaml_lab.studies.rundir": {"load_run", "per_task"},
    "amaml_lab.studies.stats": {"markdown_table", "paired_runs"},
    "amaml_lab.tasks": {"cos_mixture_task", "omniglot"},
    "amaml_lab.tasks.examples": {"build_task"},
    "amaml_lab.tasks.movielens": {"ml100k_or_demo"},
    "amaml_lab.teach": {"backward", "exercises", "surfaces"},
    "amaml_lab.teach.horizons_data": {"summary_numbers"},
    "amaml_lab.teach.payoff": {"mini_study"},
    "amaml_lab.teach.surfaces": {"inner_paths", "surface"},
    "amaml_lab.training.config": {"RunConfig"},
    "amaml_lab.training.evaluate": {"episode_check"},
    "amaml_lab.training.runs": {"run"},
    "amaml_lab.viz": {"payoff", "directions"},
    "amaml_lab.viz.static": {
        "baselines_static_figure",
        "directions_static_figure",
        "horizon_static_figure",
        "page_weight",
        "payoff_static_figure",
    },
    "amaml_lab.widgets": {
        "BaselineExplorer",
        "CostExplorer",
        "FlowExplorer",
        "HorizonExplorer",
        "ReconstructionExplorer",
    },
    "amaml_lab.widgets.directions": {"DirectionsExplorer"},
    "amaml_lab.widgets.payoff": {"PayoffExplorer"},
}
PINNED_MAINS = {
    "amaml_lab",
    "amaml_lab.bench",
    "amaml_lab.bench.compile_cost",
    "amaml_lab.bench.worker",
    "amaml_lab.teach.horizons_data",
    "amaml_lab.studies.directions",
    "amaml_lab.studies.stopping",
}
IMPORT = re.compile(r"^\s*(?:from (amaml_lab[\w.]*) import \(?([\w, ]+)|import (amaml_lab[\w.]*))", re.M)
MAIN = re.compile(r"-m (amaml_lab[\w.]*)")


def texts():
    for path in sorted(ROOT.glob("notebooks/*.ipynb")):
        yield path, "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    for pattern in (
        "README.md",
        "docs/*.md",
        "book/*.md",
        "notebooks/*.md",
        "results/*.sh",
        "results/*.md",
        "benchmarks/*.sh",
        "Makefile",
    ):
        for path in sorted(ROOT.glob(pattern)):
            yield path, path.read_text()


def used() -> tuple[dict, set]:
    imports, mains = {}, set()
    for _, text in texts():
        for m in IMPORT.finditer(text):
            if m.group(3):
                imports.setdefault(m.group(3), set()).add("")
            else:
                names = {n.strip().split(" as ")[0] for n in m.group(2).split(",") if n.strip()}
                imports.setdefault(m.group(1), set()).update(names)
        mains.update(MAIN.findall(text))
    return imports, mains


def test_every_path_the_docs_use_is_pinned():
    imports, mains = used()
    unpinned = {f"{mod}:{n}" for mod, names in imports.items() for n in names if n not in PINNED.get(mod, ())}
    assert unpinned == set()
    assert mains <= PINNED_MAINS


def test_every_pinned_path_imports_without_a_warning():
    lines = [f"import {mod}" if n == "" else f"from {mod} import {n}" for mod, names in PINNED.items() for n in names]
    lines += [f"import importlib.util; assert importlib.util.find_spec({m!r}) is not None" for m in PINNED_MAINS]
    done = subprocess.run([sys.executable, "-W", "error", "-c", "\n".join(lines)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_module_run_with_python_m_has_a_main():
    for module in PINNED_MAINS - {"amaml_lab", "amaml_lab.bench"}:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert 'if __name__ == "__main__":' in path.read_text(), module


@pytest.mark.parametrize(
    "old,name,new",
    [
        ("runs", "load_run", "studies.rundir"),
        ("runs", "run", "training.runs"),
        ("experiments", "markdown_table", "studies.stats"),
        ("experiments", "paired_runs", "studies.stats"),
        ("horizon_study", "mini_study", "teach.payoff"),
        ("horizon_study", "cross_matrix", "studies.payoff"),
        ("horizon_study", "memory_table", "measure"),
        ("explore", "inner_paths", "teach.surfaces"),
        ("viz_study", "memory_figure", "viz.payoff"),
        ("widgets_study", "PayoffExplorer", "widgets.payoff"),
        ("committed", "RESULTS", "studies.committed"),
        ("config", "RunConfig", "training.config"),
    ],
)
def test_an_old_path_still_imports_and_warns_with_its_new_one(old, name, new):
    import importlib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = getattr(importlib.import_module(f"amaml_lab.{old}"), name)
    assert got is getattr(importlib.import_module(f"amaml_lab.{new}"), name)
    assert any(issubclass(w.category, DeprecationWarning) and f"amaml_lab.{new}" in str(w.message) for w in caught)


def test_every_old_path_is_listed_and_leads_somewhere():
    from amaml_lab.moved import MOVED

    for old, news in MOVED.items():
        assert not (ROOT / "amaml_lab" / f"{old}.py").exists(), f"{old}.py is back beside its stand-in"
        for new in news:
            path = ROOT / "amaml_lab" / new.replace(".", "/")
            assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), new  # a module or package
