"""tools/mutants.py's defects still apply: each one's line is in its file exactly once (else the drill breaks)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
mutants = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutants)


@pytest.mark.parametrize(
    "name,path,old,new,tests",
    mutants.MUTANTS + mutants.negation_mutants(),
    ids=lambda v: v if isinstance(v, str) and len(v) < 80 else None,
)
def test_each_defect_finds_its_line(name, path, old, new, tests):
    text = (ROOT / path).read_text()
    assert text.count(old) == 1, f"{name}: the line to mutate is in {path} {text.count(old)} times"
    assert old != new
