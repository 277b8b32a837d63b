"""The files people launch the kit with: Binder, conda, the README's badge and commands."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def deps(path: Path) -> str:
    return path.read_text()


def test_binder_builds_a_cpu_environment_and_installs_the_package():
    env = deps(ROOT / "binder" / "environment.yml")
    for name in ("pytorch", "cpuonly", "torchdiffeq", "jupyterlab", "ipywidgets", "plotly", "anywidget", "papermill"):
        assert name in env, name
    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post[0].startswith("#!") and "set -e" in post
    assert any(line.startswith("pip install") and " -e ." in line for line in post)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_conda_environment_lists_the_packages():
    env = deps(ROOT / "environment.yml")
    for name in ("pytorch", "torchdiffeq", "jupyterlab", "ipywidgets", "plotly", "numpy", "papermill"):
        assert name in env, name


def test_readme_badge_opens_the_tour_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)]+\)", readme)
    assert badge and "urlpath=lab/tree/notebooks/00_tour.ipynb" in badge.group(0)
    assert (ROOT / "notebooks" / "00_tour.ipynb").is_file()


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
