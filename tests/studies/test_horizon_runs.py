"""The horizon experiment's run files: the cross-evaluation columns, the task ids, and pairing only the same tasks."""

import csv
import json

import pytest
import torch
from helpers import SMALL_RUN as SMALL
from helpers import euler_by_hand
from helpers import run_cli as cli

EULER = ["--solver", "euler", "--step-size", "0.05"]


def _rows(folder):
    return list(csv.DictReader(open(folder / "tasks.csv")))


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_test_horizons_are_the_runs_inner_loop_at_other_lengths(tmp_path, capsys, reg):
    """adapt<N> is the nRMSE after N Euler steps of the run's own flow (its reg included): the column at the
    run's own N equals ``inner``, N = 0 is ``theta``, and one task's adapt5 equals an Euler loop written by hand
    from the run's final theta (a defect in the step count, the reg, or the step size would show)."""
    code, _, err = cli(
        capsys,
        "run",
        "Sinusoid",
        5,
        5,
        3,
        "cpu",
        "--method",
        "maml",
        "--meta-steps",
        2,
        "--reg",
        reg,
        "--test-horizons",
        "5,0,3",
        *EULER,
        "--out",
        tmp_path,
        *SMALL,
    )
    assert code == 0, err
    rows = _rows(tmp_path)
    assert [k for k in rows[0] if k.startswith("adapt")] == ["adapt3", "adapt5"]  # sorted, 0 is the theta column
    for r in rows:
        assert float(r["adapt3"]) == pytest.approx(float(r["inner"]), rel=1e-12)
        assert float(r["adapt5"]) != pytest.approx(float(r["inner"]), rel=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["test_horizons"] == [0, 3, 5]
    assert summary["final"]["nrmse_adapt5"] == pytest.approx(sum(float(r["adapt5"]) for r in rows) / 3, rel=1e-12)
    # by hand, for task 1: the final theta from the checkpoint, the task's support set and test grid
    from amaml_lab.tasks.domains import load_domain

    theta = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["theta"]
    evalset = load_domain("Sinusoid", 5, 5).eval_set(3, 5, 5)
    (sx, sy), (tx, ty) = [tuple(t[1] for t in pair) for pair in (evalset.support, evalset.target)]
    u = euler_by_hand(theta, sx, sy, 5, 0.05, reg)
    hidden = torch.tanh(torch.tanh(tx @ u["0.weight"].T + u["0.bias"]) @ u["2.weight"].T + u["2.bias"])
    nrmse = float(((hidden @ u["4.weight"].T + u["4.bias"] - ty) ** 2).mean().sqrt())
    assert float(rows[1]["adapt5"]) == pytest.approx(nrmse, rel=1e-10)


def test_test_horizons_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "run", "Sinusoid", 5, 5, 3, "cpu", "--test-horizons", "10,-1", "--out", tmp_path)
    assert code == 2 and "--test-horizons" in err and len(err.strip().splitlines()) == 1
    from amaml_lab.training.config import RunConfig

    with pytest.raises(ValueError, match="test_horizons"):
        RunConfig("Sinusoid", 5, 5, 3, test_horizons=(1.5,)).resolved().check()


def test_task_ids_name_the_tasks_and_paired_refuses_other_tasks(tmp_path, capsys):
    """tasks.csv records a content id per meta-test task: two runs on the same tasks share them (whatever the
    method and seed), a run with other shots has other ids, and paired_runs refuses such a pair."""
    from amaml_lab.studies.rundir import per_task
    from amaml_lab.studies.stats import paired, paired_runs

    base = ["run", "Sinusoid", 5, 5, 3, "cpu", "--meta-steps", 2, *SMALL]
    assert cli(capsys, *base, "--out", tmp_path / "a")[0] == 0
    assert cli(capsys, *base, "--method", "maml", "--seed", "1", "--out", tmp_path / "b")[0] == 0
    assert cli(capsys, *["run", "Sinusoid", 6, 5, *base[4:]], "--out", tmp_path / "c")[0] == 0
    a, b, c = (per_task(tmp_path / n) for n in "abc")
    assert len(set(a["task_id"])) == 3 and a["task_id"] == b["task_id"]
    assert all(x != y for x, y in zip(a["task_id"], c["task_id"]))
    assert paired_runs(a, b, "inner") == paired(a["inner"], b["inner"])
    with pytest.raises(ValueError, match="task ids differ on 3 of 3"):
        paired_runs(a, c, "inner")
    old = {k: v for k, v in b.items() if k != "task_id"}  # a run from before task ids were recorded
    with pytest.raises(ValueError, match="both runs' task ids or neither"):
        paired_runs(a, old, "inner")
    assert paired_runs(old, {k: v for k, v in a.items() if k != "task_id"}, "inner")["tasks"] == 3


def test_task_ids_change_with_one_point():
    from amaml_lab.tasks.domains import EvalSet

    x, y = torch.zeros(2, 3, 1, dtype=torch.float64), torch.ones(2, 3, 1, dtype=torch.float64)
    ids = EvalSet((x, y), (x, y)).ids()
    y2 = y.clone()
    y2[1, 2, 0] = 1 + 1e-12
    moved = EvalSet((x, y2), (x, y)).ids()
    assert ids[0] == moved[0] and ids[1] != moved[1]
    assert ids == EvalSet((x.float(), y), (x, y)).ids()  # a float32 copy hashes as its float64 values


def test_reevaluate_equals_a_run_evaluated_so_from_the_start(tmp_path, capsys):
    """``amaml-lab reevaluate --eval-steps`` on a finished run gives the files of a run that was given those
    settings from the start (the same theta: meta-training untouched), and keeps the shorter fine-tuning as ft10."""
    base = ["run", "Sinusoid", 5, 5, 3, "cpu", "--meta-steps", 4, "--eval-interval", 2, *SMALL]
    assert cli(capsys, *base, "--out", tmp_path / "short")[0] == 0
    assert (
        cli(capsys, *[a if a != "20" else "40" for a in base], "--test-horizons", "7", "--out", tmp_path / "long")[0]
        == 0
    )
    metrics = (tmp_path / "short" / "metrics.csv").read_text()
    evals = (tmp_path / "short" / "evals.csv").read_text()
    code, out, err = cli(
        capsys, "reevaluate", tmp_path / "short", "--eval-steps", 40, "--test-horizons", "7", "--quiet"
    )
    assert code == 0, err
    assert "after 40 fine-tuning steps" in out
    for name in ("tasks.csv", "eval.csv"):
        assert (tmp_path / "short" / name).read_text() == (tmp_path / "long" / name).read_text(), name
    short = json.loads((tmp_path / "short" / "summary.json").read_text())
    long = json.loads((tmp_path / "long" / "summary.json").read_text())
    assert short["final"] == long["final"] and short["config"]["eval_steps"] == 40
    assert (tmp_path / "short" / "metrics.csv").read_text() == metrics  # meta-training untouched
    assert (tmp_path / "short" / "evals.csv").read_text() == evals  # the evaluations along training kept


def test_reevaluate_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "reevaluate", tmp_path)
    assert code == 2 and "holds no finished run" in err and len(err.strip().splitlines()) == 1


def test_adapt_batch_at_equals_one_adapt_batch_per_horizon():
    """One solve saving several horizons gives each horizon's own solve (and 0 is theta); bad horizons refused."""
    from amaml_lab.functional import module_params
    from amaml_lab.models import mlp
    from amaml_lab.training.evaluate import adapt_batch, adapt_batch_at

    model = mlp(1, (4, 4), 1)
    theta = module_params(model)
    g = torch.Generator().manual_seed(0)
    support = (
        torch.randn(3, 5, 1, generator=g, dtype=torch.float64),
        torch.randn(3, 5, 1, generator=g, dtype=torch.float64),
    )

    def loss(p, data):
        return 0.5 * ((torch.func.functional_call(model, p, (data[0],)) - data[1]) ** 2).mean()

    states = adapt_batch_at(loss, theta, support, [7, 0, 3], 0.1, "euler", reg=0.3)
    for n, state in zip([7, 0, 3], states):
        expected = (
            adapt_batch(loss, theta, support, n, 0.1, "euler", reg=0.3)
            if n
            else {k: v.expand(3, *v.shape) for k, v in theta.items()}
        )
        for k in theta:
            assert torch.allclose(state[k], expected[k], rtol=0, atol=1e-14), (n, k)
    assert not torch.allclose(states[0]["0.weight"], states[2]["0.weight"])
    with pytest.raises(ValueError, match="horizons must be step counts"):
        adapt_batch_at(loss, theta, support, [-1], 0.1, "euler")
