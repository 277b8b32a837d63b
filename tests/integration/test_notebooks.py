"""Every notebook runs under papermill with FAST=True; sources are committed clean; parameters are checked."""

import json
import subprocess
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"
OMNIGLOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"


def parameters_for(path: Path) -> dict:
    params = {"FAST": True}
    if path.name.startswith("06_") and (ML100K / "u.data").is_file():
        params["DATA_ROOT"] = str(ML100K)  # the real copy where this machine has one; generated ratings otherwise
    if path.name.startswith("07_") and (OMNIGLOT / "images_background_small1.zip").is_file():
        params["DATA_ROOT"] = str(OMNIGLOT)  # the small subsets where this machine has them; generated glyphs otherwise
    return params


def committed_text(path: Path) -> str:
    """The notebook as it is staged for commit (git's index), not as a learner's run left it: JupyterLab saves a
    notebook with its outputs, and that working copy must not fail the suite.  Outside a git checkout, or for a
    notebook git does not track yet, the file itself."""
    staged = subprocess.run(["git", "-C", str(path.parent), "show", f":./{path.name}"], capture_output=True, text=True)
    return staged.stdout if staged.returncode == 0 else path.read_text()


def test_hygiene_reads_what_is_committed_not_a_learners_outputs(tmp_path):
    """A tracked notebook run in JupyterLab (outputs saved in the working file) is read as staged: clean."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    clean = {
        "cells": [{"cell_type": "code", "source": "1", "outputs": [], "execution_count": None, "metadata": {}}],
        "metadata": {},
    }
    path = tmp_path / "00_x.ipynb"
    path.write_text(json.dumps(clean))
    subprocess.run(["git", "-C", str(tmp_path), "add", path.name], check=True)
    ran = {
        **clean,
        "cells": [{**clean["cells"][0], "outputs": [{"output_type": "stream", "text": "1"}], "execution_count": 1}],
    }
    path.write_text(json.dumps(ran))
    assert json.loads(committed_text(path)) == clean
    untracked = tmp_path / "01_y.ipynb"
    untracked.write_text(json.dumps(ran))
    assert json.loads(committed_text(untracked)) == ran  # not tracked yet: the file is what would be committed


def test_the_series_is_there():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names == [f"{i:02d}" for i in range(len(NOTEBOOKS))]


def test_the_tour_points_to_every_notebook():
    """00's "Where next" links every other notebook of the series (09, the open question, was missing)."""
    tour = json.loads(committed_text(NOTEBOOKS[0]))
    where = next("".join(c["source"]) for c in tour["cells"] if "## Where next" in "".join(c["source"]))
    missing = [p.name for p in NOTEBOOKS[1:] if f"]({p.name})" not in where]
    assert not missing, f"00's Where next does not link {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = json.loads(committed_text(path))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    assert "widgets" not in nb.get("metadata", {}), "strip widget state"
    assert not any("widgets" in c.get("metadata", {}) for c in nb["cells"]), "strip widget state"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0], "one tagged parameters cell, the first code cell"
    assert any(c["cell_type"] == "markdown" for c in nb["cells"][:1]), "open with prose"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameters_are_known(path):
    import papermill

    params = papermill.inspect_notebook(str(path))
    assert {"FAST", "SEED", "DEVICE"} <= set(params)
    assert params["FAST"]["default"] in ("True", "False")
    assert set(parameters_for(path)) <= set(params), "a parameter the test passes is not in the notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_fast(path, tmp_path, monkeypatch):
    import papermill

    for name in ("CI", "AMAML_LAB_QUIET"):  # the kernel shows progress as a user's would
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / path.name
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=parameters_for(path),
        kernel_name="python3",
        cwd=str(path.parent),
        progress_bar=False,
    )
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors
    warned = [o["text"][:300] for o in outputs if o.get("name") == "stderr" and "Warning" in o.get("text", "")]
    assert not warned, f"the executed notebook printed warnings: {warned}"
    # a plotly figure saved in the executed notebook carries its data: every one has a trace with points
    for figure in (
        o["data"]["application/vnd.plotly.v1+json"]
        for o in outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ):
        points = [
            len(v.get("bdata", "")) if isinstance(v, dict) else len(v)  # lists, or plotly's typed arrays
            for t in figure.get("data", [])
            for v in (t.get(k) for k in ("x", "y", "z"))
            if isinstance(v, (list, str, dict))
        ]
        assert figure.get("data") and max(points, default=0) > 0, "a saved figure has no traces or no points"
    # a widget app's output carries its figure's data beside the widget (read without a kernel, the widget is empty)
    for o in outputs:
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {}) and path.name[:2] in (
            "01",
            "02",
            "03",
            "04",
            "08",
        ):
            figure = o["data"].get("application/vnd.plotly.v1+json")
            assert figure and any(t.get("x") or t.get("y") for t in figure["data"]), "a widget app saved without data"
    # and the widget's own saved state holds its traces: a FigureWidget made empty and filled later saves none, and
    # a viewer that renders widgets from the saved state (nbviewer, JupyterLab without a kernel) shows an empty plot
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    figures = [m["state"]["_widget_data"] for m in state.values() if "_widget_data" in m.get("state", {})]
    assert all(figures), f"{sum(not f for f in figures)} of {len(figures)} saved FigureWidgets have no traces"
    if path.name[:2] in ("05", "06", "07"):  # no widget apps here: progress is text, one line per run
        widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert not widgets, f"{len(widgets)} widget outputs (progress bars?) left in the notebook"
