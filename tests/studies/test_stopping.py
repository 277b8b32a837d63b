"""The image runs' stopping rule (amaml_lab.studies.stopping), on evaluation rows made by hand."""

import csv
import json

import pytest

from amaml_lab.studies import stopping


def _rows(accuracies, every=250):
    return [{"meta_step": i * every, "val_accuracy_mean": a} for i, a in enumerate(accuracies)]


def test_it_stops_once_the_best_is_patience_meta_steps_old():
    # best 0.60 at 500; 750, 1000, 1250 lower or equal (equal is no rise); at 1500 the best is 1,000 old: stop
    assert stopping.stop_point(_rows([0.2, 0.5, 0.6, 0.55, 0.6, 0.59])) is None
    assert stopping.stop_point(_rows([0.2, 0.5, 0.6, 0.55, 0.6, 0.59, 0.58])) == 1500
    # a late rise restarts the wait
    assert stopping.stop_point(_rows([0.2, 0.5, 0.6, 0.55, 0.6, 0.61, 0.58, 0.6, 0.6])) is None
    # the cap stops a run that keeps rising
    assert stopping.stop_point(_rows([i / 100 for i in range(41)])) == 10000


def _folder(tmp_path, accuracies):
    (tmp_path / "summary.json").write_text(json.dumps({"config": {}, "meta_steps": 250 * (len(accuracies) - 1)}))
    with (tmp_path / "evals.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["meta_step", "accuracy_mean", "val_accuracy_mean"])
        for i, a in enumerate(accuracies):
            w.writerow([250 * i, 0.5, a])
    return tmp_path


def test_next_says_how_far_to_train_or_stop(tmp_path, capsys):
    assert stopping.next_target(tmp_path / "none") == "250"
    assert stopping.next_target(_folder(tmp_path, [0.2, 0.5, 0.6])) == "750"
    assert stopping.next_target(_folder(tmp_path, [0.2, 0.5, 0.6, 0.55, 0.6, 0.59, 0.58])) == "stop"
    assert stopping.main(["next", str(tmp_path)]) == 0 and capsys.readouterr().out == "stop\n"
    assert (
        stopping.main(["go"]) == 2
        and "usage: python -m amaml_lab.studies.stopping next FOLDER" in capsys.readouterr().err
    )


def test_a_run_without_validation_is_refused(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"config": {}, "meta_steps": 250}))
    (tmp_path / "evals.csv").write_text("meta_step,accuracy_mean\n0,0.2\n250,0.4\n")
    with pytest.raises(ValueError, match="no val_accuracy_mean: run it with --validation-characters"):
        stopping.next_target(tmp_path)
    assert stopping.main(["next", str(tmp_path)]) == 2


def test_the_script_evaluates_where_the_rule_reads():
    """results/run_omniglot_long.sh evaluates every EVERY meta-steps (the rule's spacing) with held-out characters,
    and results/README.md states the rule's numbers."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (root / "results" / "run_omniglot_long.sh").read_text()
    assert f"--eval-interval {stopping.EVERY} --validation-characters 20" in script
    assert "amaml_lab.studies.stopping next" in script
    readme = " ".join((root / "results" / "README.md").read_text().split())
    rule = f"scored every {stopping.EVERY} meta-steps. A run stops at the first evaluation where its best validation"
    assert rule in readme and f"is {stopping.PATIENCE:,} meta-steps old, or at {stopping.CAP:,} meta-steps" in readme
