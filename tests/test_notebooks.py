"""Every notebook runs under papermill with FAST=True; sources are committed clean."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    assert "widgets" not in nb.get("metadata", {}), "strip widget state"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_parameters_are_known(path):
    import papermill
    params = papermill.inspect_notebook(str(path))
    assert {"FAST", "SEED", "DEVICE"} <= set(params)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_fast(path, tmp_path):
    import papermill
    papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters={"FAST": True},
                               kernel_name="python3", cwd=str(path.parent), progress_bar=False)
