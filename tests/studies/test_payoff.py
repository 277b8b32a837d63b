"""The horizon experiment's reading (amaml_lab.studies.payoff) and its explorer, on run folders made here."""

import json
import math

import pytest
import torch
from helpers import euler_by_hand

from amaml_lab.measure import memory_table
from amaml_lab.studies import payoff as study
from amaml_lab.teach.payoff import mini_study


def write_run(root, setting, reg, method, steps, seed, columns: dict, ids=None, seconds=0.5, eval_steps=5000):
    folder = root / setting / f"reg{reg}" / f"{method}-{steps}" / f"seed{seed}"
    folder.mkdir(parents=True)
    n = len(next(iter(columns.values())))
    ids = ids or [f"t{i}" for i in range(n)]
    names = list(columns)
    rows = ["task,task_id," + ",".join(names)]
    rows += [f"{i},{ids[i]}," + ",".join(repr(columns[c][i]) for c in names) for i in range(n)]
    (folder / "tasks.csv").write_text("\n".join(rows) + "\n")
    summary = {
        "status": "done",
        "meta_steps": 1000,
        "seconds_per_meta_step": seconds,
        "config": {"eval_steps": eval_steps, "step_size": 0.01},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def columns(inner, theta, adapt10, adapt100, finetuned):
    return {"theta": theta, "inner": inner, "finetuned": finetuned, "adapt10": adapt10, "adapt100": adapt100}


@pytest.fixture
def grid(tmp_path):
    """Two seeds, theta trained at N = 10 and 100, three tasks; values chosen so every number is known by hand."""
    s = "Toy-5-5"
    base = dict(theta=[1.0, 1.0, 1.0], adapt100=[0.6, 0.6, 0.6], finetuned=[0.2, 0.2, 0.2])
    write_run(tmp_path, s, 0, "maml", 10, 0, columns(inner=[0.9, 0.8, 0.7], adapt10=[0.9, 0.8, 0.7], **base))
    write_run(tmp_path, s, 0, "maml", 10, 1, columns(inner=[0.8, 0.8, 0.8], adapt10=[0.8, 0.8, 0.8], **base))
    write_run(
        tmp_path,
        s,
        0,
        "maml",
        100,
        0,
        columns(
            inner=[0.5, 0.4, 0.3],
            theta=[1.2, 1.2, 1.2],
            adapt10=[0.9, 0.9, 0.9],
            adapt100=[0.5, 0.4, 0.3],
            finetuned=[0.1, 0.1, 0.1],
        ),
        seconds=5.0,
    )
    write_run(
        tmp_path,
        s,
        0,
        "maml",
        100,
        1,
        columns(
            inner=[0.9, 0.7, 0.8],
            theta=[1.4, 1.4, 1.4],
            adapt10=[0.9, 0.9, 0.9],
            adapt100=[0.9, 0.7, 0.8],
            finetuned=[0.3, 0.3, 0.3],
        ),
        seconds=7.0,
    )
    unfinished = write_run(
        tmp_path,
        s,
        0,
        "maml",
        300,
        0,
        columns(inner=[0.1] * 3, theta=[1.0] * 3, adapt10=[0.1] * 3, adapt100=[0.1] * 3, finetuned=[0.1] * 3),
    )
    (unfinished / "summary.json").write_text(json.dumps({"status": "training"}))
    return study.load(tmp_path)


def test_load_reads_the_layout_and_skips_unfinished_runs(grid):
    assert sorted((r["method"], r["steps"], r["seed"], r["reg"]) for r in grid) == [
        ("maml", 10, 0, 0.0),
        ("maml", 10, 1, 0.0),
        ("maml", 100, 0, 0.0),
        ("maml", 100, 1, 0.0),
    ]
    assert study.settings(grid) == [("Toy-5-5", 0.0)]
    assert study.evaluated_horizons(grid) == [0, 10, 100]


def test_cross_matrix_by_hand(grid):
    m = study.cross_matrix(grid, "Toy-5-5", 0.0)
    assert m["train"] == [10, 100] and m["test"] == [0, 10, 100] and m["seeds"] == [2, 2]
    # trained at 100, tested at 100: seed 0 mean 0.4, seed 1 mean 0.8
    assert m["mean"][1][2] == pytest.approx(0.6) and (m["low"][1][2], m["high"][1][2]) == pytest.approx((0.4, 0.8))
    assert m["mean"][0][0] == pytest.approx(1.0) and m["mean"][1][0] == pytest.approx(1.3)
    assert m["mean"][0][1] == pytest.approx((0.8 + 0.8) / 2)


def test_paired_by_seed_and_agreement_by_hand(grid):
    pairs = study.paired_by_seed(grid, "Toy-5-5", 0.0, ("maml", 10), ("maml", 100), "inner")
    # seed 0: differences -0.4 each (0.5-0.9, 0.4-0.8, 0.3-0.7): mean -0.4, no spread
    assert pairs[0]["difference"] == pytest.approx(-0.4) and pairs[0]["ci95"] == pytest.approx(0.0, abs=1e-12)
    # seed 1: +0.1, -0.1, 0.0: mean 0, s.d. 0.1
    assert pairs[1]["difference"] == pytest.approx(0.0, abs=1e-12)
    assert pairs[1]["ci95"] == pytest.approx(1.96 * 0.1 / math.sqrt(3))
    assert study.agreement(pairs) == "unresolved"  # seed 1 does not resolve it
    assert study.agreement({0: pairs[0]}) == "lower"
    assert study.agreement({0: {"difference": 0.3, "ci95": 0.1}, 1: {"difference": 0.2, "ci95": 0.15}}) == "higher"
    assert study.agreement({}) == "unresolved"
    # two columns of different runs: theta at 100 test steps against theta at 10's own loop
    cross = study.paired_by_seed(grid, "Toy-5-5", 0.0, ("maml", 10), ("maml", 100), "adapt100")
    assert cross[0]["difference"] == pytest.approx((0.5 + 0.4 + 0.3) / 3 - 0.6)


def test_tables_carry_the_numbers(grid):
    text = study.study_tables(grid)
    assert "| maml-100 | 1 | 0.400, 0.800 | -0.400 ± 0.000; -0.000 ± 0.113 | unresolved | 0.200 | 6.000 |" in text
    assert "| 100 (2) | 1.300 (1.200–1.400) | 0.900 (0.900–0.900) | **0.600 (0.400–0.800)** |" in text
    assert "5,000 Adam its" in text and "over 3 meta-test tasks" in text
    assert "same 1000 steps" not in text  # no column for 1,000 test steps: that table is left out


def test_paired_refuses_runs_on_other_tasks(tmp_path):
    write_run(tmp_path, "Toy-5-5", 0, "maml", 10, 0, columns([0.9] * 2, [1.0] * 2, [0.9] * 2, [0.6] * 2, [0.2] * 2))
    write_run(
        tmp_path,
        "Toy-5-5",
        0,
        "maml",
        100,
        0,
        columns([0.5] * 2, [1.0] * 2, [0.9] * 2, [0.5] * 2, [0.2] * 2),
        ids=["t0", "other"],
    )
    with pytest.raises(ValueError, match="task ids differ on 1 of 2"):
        study.paired_by_seed(study.load(tmp_path), "Toy-5-5", 0.0, ("maml", 10), ("maml", 100), "inner")


def test_committed_says_where_results_come_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="run_horizon.sh"):
        study.committed(tmp_path / "nothing")


def test_memory_table_shows_refusals():
    rows = [
        {"name": "conv4-maml", "steps": 10, "peak_mb": 40.0, "time_s": 0.1},
        {"name": "conv4-maml", "steps": 3000, "predicted_mb": 5438.2, "error": "refused: ..."},
        {"name": "conv4-adjoint-sqrt", "steps": 3000, "peak_mb": 44.7, "time_s": 53.1},
    ]
    text = memory_table(rows)
    assert "| 3,000 | refused (5,438 MB predicted) | 45 MB, 53.1 s |" in text


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    records = mini_study(
        out, steps=(2, 4), meta_steps=3, eval_tasks=4, eval_steps=10, step_size=0.05, test_horizons=(0, 2, 4, 9)
    )
    return out, records


def test_mini_study_and_explorer_index_what_an_independent_loop_computes(mini, monkeypatch):
    """The explorer's adapted curve for (N, N_test) is theta_N (its checkpoint) adapted N_test steps by
    adapt_batch alone and evaluated on the task's grid; a move recomputes nothing."""
    from amaml_lab.tasks.domains import load_domain
    from amaml_lab.training import evaluate
    from amaml_lab.widgets.payoff import PayoffExplorer

    out, records = mini
    assert sorted(r["steps"] for r in records) == [2, 4] and study.evaluated_horizons(records) == [0, 2, 4, 9]
    app = PayoffExplorer(records, "Sinusoid-10-10", tasks=(1, 3))
    assert app.values() == {"train": 2, "test": 9}  # the shortest-trained theta, the longest test loop
    monkeypatch.setattr(evaluate, "adapt_batch_at", lambda *a, **k: pytest.fail("a move recomputed"))
    app.controls["train"].value = 4
    app.controls["test"].value = 0
    app.controls["train"].value = 2
    app.controls["test"].value = 9
    assert app.updates == 4 and "N = 2" in app.status.value and "adapted for 9 steps" in app.status.value
    monkeypatch.undo()
    # independently: theta_2 from its checkpoint, 9 Euler steps of 0.05 on task 3's support set, written out by hand
    record = next(r for r in records if r["steps"] == 2)
    theta = torch.load(record["folder"] / "checkpoint.pt", weights_only=False)["theta"]
    evalset = load_domain("Sinusoid", 10, 10).eval_set(4, 10, 10)
    u = euler_by_hand(theta, evalset.support[0][3], evalset.support[1][3], 9, 0.05, 0.0)
    x = evalset.target[0][3, :: max(1, evalset.target[0].shape[1] // 200)]  # the explorer's 200 points
    hidden = torch.tanh(torch.tanh(x @ u["0.weight"].T + u["0.bias"]) @ u["2.weight"].T + u["2.bias"])
    expected = (hidden @ u["4.weight"].T + u["4.bias"])[:, 0]
    shown = torch.tensor(app.figure.data[3 * 1 + 2].y, dtype=torch.float64)
    assert torch.allclose(shown, expected, rtol=0, atol=1e-10)
    # the framed cell and the status line follow the move; the cell is the cross-evaluation's mean
    assert app.figure.data[-1].x == ("9",) and app.figure.data[-1].y == ("2",)
    # the axes are fixed: the heatmap's to its cells (no padding for the frame at an edge), the adapted panel's to
    # every state's values, so no move re-ranges a panel
    left, right = app.figure.get_subplot(1, 1), app.figure.get_subplot(1, 2)
    assert list(right.xaxis.range) == [-0.5, 3.5] and list(right.yaxis.range) == [-0.5, 1.5]
    every = [float(v) for v in app.view["pred"].flatten()] + [float(v) for v in app.view["truth"].flatten()]
    assert left.yaxis.range[0] < min(every) and left.yaxis.range[1] > max(every)
    cell = app.cell()
    assert cell["mean"] == pytest.approx(study.task_mean(record, "adapt9"))
    with pytest.raises(ValueError, match="train=7 is not computed; allowed values: 2, 4"):
        PayoffExplorer(records, "Sinusoid-10-10", train=7, view=app.view)


def test_runs_evaluated_at_different_test_horizons_share_only_their_common_columns(tmp_path):
    """A run evaluated at N_test = 10 and 1,000 beside one evaluated at 10 and 100: the cross-evaluation shows 0 and
    10 only, never a column some run never had (whichever run is read first)."""
    s, base = "Toy-5-5", dict(theta=[1.0, 1.0], inner=[0.5, 0.5], finetuned=[0.2, 0.2], adapt10=[0.7, 0.7])
    write_run(tmp_path, s, 0, "maml", 10, 0, {**base, "adapt100": [0.6, 0.6]})
    write_run(tmp_path, s, 0, "maml", 10, 1, {**base, "adapt1000": [0.4, 0.4]})
    write_run(tmp_path, s, 0, "maml", 100, 0, {**base, "adapt100": [0.3, 0.3], "adapt1000": [0.2, 0.2]})
    records = study.load(tmp_path)
    for order in (records, records[::-1]):
        assert study.evaluated_horizons(order) == [0, 10]
        m = study.cross_matrix(order, s, 0.0)
        assert m["test"] == [0, 10] and all(len(row) == 2 for row in m["mean"])
