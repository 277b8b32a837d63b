"""The files people launch the kit with: Binder, conda, the README's badge and commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def deps(path: Path) -> str:
    return path.read_text()


CONDA_NAME = {"torch": "pytorch"}  # PyPI name -> conda-forge name, where they differ


def pip_requirements(*extras) -> dict:
    """{name: version spec} of pyproject's dependencies and the given extras."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"]) + [d for e in extras for d in project["optional-dependencies"][e]]
    out = {}
    for line in lines:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*([<>=!~].*)?", line.split("#")[0].strip())
        out[CONDA_NAME.get(m.group(1).lower(), m.group(1).lower())] = (m.group(2) or "").replace(" ", "")
    return out


def conda_requirements(path: Path) -> tuple[list, dict]:
    """(channels, {name: version spec}) of a conda environment file (pip and python left out)."""
    channels, deps, section = [], {}, None
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        item = line.strip().lstrip("- ").strip()
        if section == "channels":
            channels.append(item)
        elif section == "dependencies" and item not in ("pip", "pip:"):
            m = re.match(r"([A-Za-z0-9_.-]+)\s*([<>=!~][^=]*(?:=[^=*][^=]*)?)?(=\*=.*)?$", item)
            if m.group(1) != "python":
                deps[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return channels, deps


def test_the_three_install_routes_name_the_same_dependencies():
    """pip extras, environment.yml and binder/ ask for the same packages at the same lower bounds."""
    lab = pip_requirements("lab")
    dev = pip_requirements("lab", "test")
    for path, expected in ((ROOT / "environment.yml", dev), (ROOT / "binder" / "environment.yml", lab)):
        channels, deps = conda_requirements(path)
        assert channels == ["conda-forge"], f"{path.name}: conda-forge alone, not {channels}"
        assert deps == expected, (
            f"{path.relative_to(ROOT)} differs from pyproject: {set(deps.items()) ^ set(expected.items())}"
        )


def test_conda_files_take_the_cpu_build_of_pytorch():
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        text = path.read_text()
        assert re.search(r"^\s*- pytorch>=[\d.]+=\*=cpu\*$", text, re.M), path
        assert "cpuonly" not in text and "- pytorch\n" not in text


def test_binder_installs_the_package():
    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post[0].startswith("#!") and "set -e" in post
    assert any(line.startswith("pip install") and " -e ." in line for line in post)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_readme_badge_opens_the_tour_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)]+\)", readme)
    assert badge and "urlpath=lab/tree/notebooks/00_tour.ipynb" in badge.group(0)
    assert (ROOT / "notebooks" / "00_tour.ipynb").is_file()


def test_ci_runs_the_readmes_test_command_with_ci_set():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test " in readme and "make test-all" in readme  # both commands, each with what it runs
    assert re.search(r"^make test-all$", ci, re.M), ".ci/run must run every test (make test-all)"
    assert re.search(r"^export CI=true\b", ci, re.M), (
        ".ci/run must export CI=true (the browser test then fails, not skips)"
    )


def test_make_lab_passes_its_flags_and_allows_root():
    """`make lab` adds --allow-root for root (JupyterLab refuses root otherwise) and hands LAB_ARGS on."""
    import os
    import shutil
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "lab", "LAB_ARGS=--port 9999 --no-browser"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if "jupyter lab notebooks/" in x)
    assert line.endswith("--port 9999 --no-browser")
    assert ("--allow-root" in line) == (os.geteuid() == 0)


def test_make_test_leaves_out_only_the_integration_tests_and_test_all_runs_everything():
    make = (ROOT / "Makefile").read_text()
    quick = re.search(r"^test: .*\n((?:\t.*\n)+)", make, re.M).group(1)
    every = re.search(r"^test-all: .*\n((?:\t.*\n)+)", make, re.M).group(1)
    assert 'pytest -m "not integration"' in quick and re.search(r"pytest\s*$", every.strip())
    assert "lint" in re.search(r"^test: (.*)$", make, re.M).group(1).split()
    assert "lint" in re.search(r"^test-all: (.*)$", make, re.M).group(1).split()
    assert "ruff check ." in make and "ruff format --check ." in make
    # the integration folder holds what takes minutes or needs more than a Python process
    names = {p.name for p in (ROOT / "tests" / "integration").glob("test_*.py")}
    assert {"test_notebooks.py", "test_browser.py", "test_book.py", "test_cuda.py"} <= names
