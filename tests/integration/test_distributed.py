"""Meta-batches over 2 ranks (torchrun, gloo): the same θ and final metrics as one process, rank 0's files, resume."""

import functools
import json
import subprocess
import sys
import warnings

import pytest
import torch

from amaml_lab.training.distributed import bounds

COMMON = ["--meta-batch", "4", "--eval-tasks", "4", "--checkpoint-every", "2", "--quiet"]
SETTINGS = {
    "synthetic": ["CosMixture2D", "5", "5", "6", "cpu", "--method", "adjoint", "--eval-steps", "20"],
    "omniglot": [
        "Omniglot",
        "1",
        "2",
        "3",
        "cpu",
        "--ways",
        "3",
        "--subset",
        "demo",
        "--hidden",
        "8",
        "--dtype",
        "float64",
        "--method",
        "maml",
    ],
}


class RankAborted(Exception):
    """A rank died by SIGABRT: a C++ abort (gloo's TCP transport can abort when a peer's socket closes under it)."""


def amaml(*args, cwd):
    out = subprocess.run(
        [sys.executable, "-m", "amaml_lab", "run", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0 and "Signal 6 (SIGABRT)" in out.stderr:
        raise RankAborted(out.stderr)
    return out


def once_more_on_abort(test):
    """Run the test again, in a fresh folder, when a rank aborted in C++ (never when our code failed: a Python
    error ends a rank with status 1, and a wrong θ fails the comparison). The abort is reported as a warning with
    the head of that run's stderr, where the ranks' faulthandler put the Python stack of every thread."""

    @functools.wraps(test)
    def wrapper(*args, tmp_path, **kwargs):
        try:
            return test(*args, tmp_path=tmp_path, **kwargs)
        except RankAborted as aborted:
            warnings.warn(
                f"a rank aborted (SIGABRT); ran the test again. Its stderr began:\n{str(aborted)[:3000]}", stacklevel=2
            )
        fresh = tmp_path / "again"
        fresh.mkdir()
        return test(*args, tmp_path=fresh, **kwargs)

    return wrapper


def state(folder):
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=False)
    return ckpt["theta"], json.loads((folder / "summary.json").read_text())


# Conv-4's convolution biases feed batch norm, which cancels them: their gradient is zero up to rounding, and
# Adam divides it by its own root mean square, so rounding noise (1e-18) becomes steps of ~1e-10. Every other
# parameter agrees to rounding.
BN_CANCELLED = {"features.0.bias", "features.3.bias", "features.6.bias", "features.9.bias"}


def same(a, b):
    for k in a:
        tol = 1e-8 if k in BN_CANCELLED else 1e-10
        assert torch.allclose(a[k], b[k], rtol=tol, atol=tol * 1e-2), (k, float((a[k] - b[k]).abs().max()))


def test_bounds_cover_the_batch_in_order():
    for tasks in (2, 5, 32):
        for size in range(1, tasks + 1):
            spans = [bounds(r, size, tasks) for r in range(size)]
            assert spans[0][0] == 0 and spans[-1][1] == tasks
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and all(hi > lo for lo, hi in spans)


@pytest.mark.parametrize("setting", list(SETTINGS))
@once_more_on_abort
def test_two_ranks_equal_one_process(setting, tmp_path):
    args = SETTINGS[setting] + COMMON + ["--meta-steps", "4"]
    one = amaml(*args, "--out", "one", cwd=tmp_path)
    two = amaml(*args, "--out", "two", "--nproc", "2", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert "(2 processes)" in two.stdout and two.stdout.count("files in two") == 1  # rank 0 alone reports
    theta1, summary1 = state(tmp_path / "one")
    theta2, summary2 = state(tmp_path / "two")
    same(theta1, theta2)
    assert summary2["world_size"] == 2 and summary1["world_size"] == 1
    for key, value in summary1["final"].items():
        if isinstance(value, float):
            assert summary2["final"][key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@once_more_on_abort
def test_two_ranks_resume_where_they_stopped(tmp_path):
    args = SETTINGS["synthetic"] + COMMON
    assert amaml(*args, "--meta-steps", "2", "--out", "two", "--nproc", "2", cwd=tmp_path).returncode == 0
    resumed = amaml(*args, "--meta-steps", "4", "--out", "two", "--nproc", "2", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = amaml(*args, "--meta-steps", "4", "--out", "one", cwd=tmp_path)
    assert straight.returncode == 0
    same(state(tmp_path / "one")[0], state(tmp_path / "two")[0])


def test_more_ranks_than_tasks_is_a_clear_error(tmp_path):
    out = amaml(*SETTINGS["synthetic"], *COMMON, "--meta-steps", "2", "--nproc", "5", "--out", "x", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--nproc 5" in out.stderr


def test_an_abort_runs_the_test_once_more_and_only_once(tmp_path):
    calls = []

    @once_more_on_abort
    def aborts_once(tmp_path):
        calls.append(tmp_path)
        if len(calls) == 1:
            raise RankAborted("terminate called after throwing an instance of 'gloo::IoException'")

    with pytest.warns(UserWarning, match="gloo::IoException"):
        aborts_once(tmp_path=tmp_path)
    assert calls == [tmp_path, tmp_path / "again"]

    @once_more_on_abort
    def always_aborts(tmp_path):
        raise RankAborted("abort")

    (tmp_path / "b").mkdir()
    with pytest.warns(UserWarning), pytest.raises(RankAborted):
        always_aborts(tmp_path=tmp_path / "b")
