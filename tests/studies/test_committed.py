"""The committed long runs the notebooks open on, and the per-episode meta-gradient check they assert."""

import pytest

from amaml_lab.studies import committed
from amaml_lab.training.config import RunConfig
from amaml_lab.training.evaluate import episode_check


@pytest.mark.parametrize("name", list(committed.SETTINGS))
def test_every_committed_setting_loads_with_its_provenance(name):
    runs = committed.runs(name)
    assert runs and all(r["summary"]["status"] == "done" and r["metrics"] for r in runs.values())
    line = committed.provenance(name, runs)
    assert committed.SETTINGS[name].script in line and "meta-steps" in line and "torch" in line
    assert (committed.RESULTS / committed.SETTINGS[name].folder / "table.md").is_file()
    est = committed.estimate(name, runs, 5000)
    hours = float(est.split("about ")[1].split(" h")[0])
    per = sum(r["summary"]["seconds_per_meta_step"] for r in runs.values())
    assert hours == pytest.approx(per * 5000 / 3600, abs=0.06)
    assert "times 2" in committed.estimate(name, runs, 10, scale=2, why="twice the batch")


def test_missing_results_say_where_they_come_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="source tree"):
        committed.runs("CosMixture-50-50", root=tmp_path)
    with pytest.raises(ValueError, match="setting='nope' is not known"):
        committed.runs("nope")


def test_episode_check_compares_each_method_with_maml_on_the_domain():
    rows = {r["label"]: r for r in episode_check(RunConfig("CosMixture2D", 10, 10, 20, method="adjoint"))}
    assert set(rows) == {"maml", "adjoint", "adjoint (discrete)", "fomaml", "reptile", "imaml"}
    assert rows["maml"]["rel_error"] == 0 and rows["adjoint (discrete)"]["rel_error"] < 1e-10
    assert 0 < rows["adjoint"]["rel_error"] < 1e-5 and 0.05 < rows["fomaml"]["rel_error"]
    rows = episode_check(
        RunConfig("Omniglot", 1, 2, 3, ways=3, subset="demo", hidden=8, method="maml"),
        methods=("maml", "adjoint (discrete)"),
    )
    assert [r["label"] for r in rows] == ["maml", "adjoint (discrete)"] and rows[1]["rel_error"] < 1e-10


def test_committed_tables_are_what_make_figures_writes(tmp_path):
    """results/*/table.md, the paired differences included, are rebuilt from the committed run folders alone."""
    import importlib.util
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    spec = importlib.util.spec_from_file_location("make_figures", root / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    for part in ("cpu-long", "omniglot-cpu", "horizon"):
        shutil.copytree(
            root / part, tmp_path / part, ignore=shutil.ignore_patterns("checkpoint.pt", "tables.md", "table.md")
        )
    assert make_figures.main(str(tmp_path), "--tables") == 0
    tables = sorted(root.glob("cpu-long/*/table.md")) + sorted(root.glob("omniglot-cpu/*/table.md"))
    assert len(tables) >= 4  # each cpu-long setting (and the seeds folder, once it has runs) and each Omniglot one
    tables.append(root / "horizon" / "tables.md")  # the horizon experiment's, from its run folders
    if (root / "horizon" / "lr").is_dir():  # issue 33's rates and where its runs stand
        tables.append(root / "horizon" / "directions.md")
    for table in tables:
        assert (tmp_path / table.relative_to(root)).read_text() == table.read_text(), table
        assert "paired" in table.read_text().lower() or table.name == "directions.md"
    assert make_figures.main(str(tmp_path), "--figures") == 2


def test_results_readme_horizon_numbers_come_from_the_tables():
    """Every nRMSE and paired difference the horizon section of results/README.md states is in the tables that
    make_figures.py builds from the run folders (results/horizon/tables.md): prose cannot drift from the data."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    text = (root / "README.md").read_text()
    section = text.split("## When does a longer inner loop pay off?")[1].split("\n## ")[0]
    tables = (root / "horizon" / "tables.md").read_text()
    pairs = re.findall(r"[−-]\d\.\d{3} ± \d\.\d{3}", section)
    values = re.findall(r"(?<![\d.±−-])\d\.\d{3}(?![\d ]*±)", section)
    assert len(pairs) >= 6 and len(values) >= 10
    for p in pairs:
        assert p.replace("−", "-") in tables, p
    for v in values:
        assert v in tables, v


def test_readme_lesson_numbers_come_from_the_tables():
    """The README's "What the kit shows" quotes the horizon experiment and its continuation (issue 33): every nRMSE
    there is in their tables."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    section = (root / "README.md").read_text().split("## What the kit shows")[1].split("\n## ")[0]
    tables = "".join((root / "results" / "horizon" / name).read_text() for name in ("tables.md", "directions.md"))
    values = re.findall(r"\b\d\.\d{3}\b", section)
    assert len(values) >= 4
    for v in values:
        assert v in tables, v
    assert "45 MB" in tables and "1,823 MB" in tables  # the memory arm's numbers the section rounds


def test_estimate_hours_scale_with_the_run():
    """The estimate's hours are the measured seconds per meta-step times the meta-steps times the scale: twice the
    meta-steps or scale 8 multiply them by exactly that (a dropped scale factor would leave them unchanged)."""
    import re

    from amaml_lab.studies import committed

    runs = committed.runs("CosMixture-50-50")
    per = sum(r["summary"]["seconds_per_meta_step"] for r in runs.values())

    def hours(text):
        return float(re.search(r"about ([\d.]+) h", text).group(1))

    assert hours(committed.estimate("CosMixture-50-50", runs, 5000)) == pytest.approx(per * 5000 / 3600, abs=0.05)
    assert hours(committed.estimate("CosMixture-50-50", runs, 5000, scale=8, why="x")) == pytest.approx(
        8 * per * 5000 / 3600, abs=0.05
    )


def test_the_shipped_cost_measurements_are_their_benchmarks_rows():
    """amaml_lab/measured/cpu-steps.json (panel (d) of the horizon explorer) is tools/package_costs.py's copy of a
    committed benchmark: the same rows, every line the panel draws measured at 10 ... 10,000 steps, and the
    compiled path's times below its eager method's at 100 steps and beyond (the numbers notebook 02 quotes)."""
    import json
    from pathlib import Path

    from amaml_lab import viz
    from amaml_lab.widgets.methods import measured_costs

    root = Path(__file__).resolve().parents[2]
    shipped = measured_costs()
    assert shipped["rows"] == json.loads((root / shipped["source"]).read_text())
    assert f"--out {shipped['source']}" in shipped["command"]
    rows = {(r["name"], r["steps"]): r for r in shipped["rows"] if "time_s" in r}
    for name in viz.HORIZON_COST:
        assert {s for (n, s) in rows if n == name} == {10, 100, 1000, 10000}, name
    for method in ("maml", "adjoint"):
        for steps in (100, 1000, 10000):
            assert rows[(f"{method}-compiled", steps)]["time_s"] < rows[(method, steps)]["time_s"]
    from amaml_lab.bench.tables import steps_table

    assert steps_table(shipped["rows"]) in (root / "docs" / "performance.md").read_text()  # the docs' table
    speedups = {
        m: [rows[(m, s)]["time_s"] / rows[(f"{m}-compiled", s)]["time_s"] for s in (100, 1000, 10000)]
        for m in ("maml", "adjoint")
    }
    assert 3.3 <= round(min(speedups["maml"]), 1) and round(max(speedups["maml"]), 1) <= 3.6
    assert 4.1 <= round(min(speedups["adjoint"]), 1) and round(max(speedups["adjoint"]), 1) <= 4.6


def test_the_directions_section_quotes_the_committed_rate_selection():
    """results/README.md's numbers on the learning rates are horizon/directions.md's rows (made from the folders)."""
    from pathlib import Path

    from amaml_lab.studies import directions

    root = Path(__file__).resolve().parents[2] / "results"
    if not (root / "horizon" / "lr").is_dir():
        pytest.skip("the rate selection is not committed yet")
    table = directions.rate_table(root / "horizon")
    row = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| CosMixture-50-50 |")}
    for run, scores in (
        ("maml-1000", "| 0.663 ± 0.029 | 0.196 ± 0.010 | 0.199 ± 0.009 |"),
        ("reptile-1000", "| 0.303 ± 0.021 | 0.123 ± 0.006 | 0.125 ± 0.007 |"),
    ):
        assert scores in row[run] and row[run].endswith("| 3e-3 |"), row[run]
    sinusoid = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| Sinusoid-10-10 |")}
    assert "| 0.259 ± 0.025 |" in sinusoid["maml-1000"] and "| 0.143 ± 0.016 |" in sinusoid["maml-1000"]
    assert sinusoid["maml-1000"].endswith("| 1e-2 |") and sinusoid["reptile-1000"].endswith("| 3e-2 |")
    assert "| 0.203 ± 0.019 |" in sinusoid["reptile-1000"] and "| 0.106 ± 0.010 |" in sinusoid["reptile-1000"]
    assert all(row.endswith("| 1e-2 |") for row in (sinusoid["fomaml-1000"], row["fomaml-1000"]))
    text = (root / "README.md").read_text()
    for quoted in (
        "0.663 at 1e-3 to 0.196 at 3e-3",
        "(0.199 at 1e-2)",
        "0.303 to 0.123 (0.125 at 1e-2)",
        "(0.123 against 0.196",
        "1e-2 (0.143, against 0.259 at 1e-3)",
        "3e-2 (0.106, against 0.203)",
        "(fomaml: 1e-2 on both)",
    ):
        assert quoted in text, quoted
    readme = (root.parent / "README.md").read_text()
    assert "(3e-3 for both), the exact gradient reaches 0.196 and Reptile 0.123" in readme


def test_seed_1_and_the_remedys_first_seed_are_quoted_from_the_pairs():
    """results/README.md's "Seed 1, and the remedy's first seed" and the README's lesson: every paired number is a
    cell of horizon/directions.md (made from the folders), and the remedy's curve "still falling" at 5,000 is the
    committed evals'."""
    import re
    from pathlib import Path

    from amaml_lab.studies.rundir import load_run

    root = Path(__file__).resolve().parents[2] / "results"
    table = (root / "horizon" / "directions.md").read_text()
    cells = {
        "seed 1": "0.061 − 0.116 = -0.055 ± 0.011 (91/100)",
        "seed 1, Sinusoid": "0.047 − 0.103 = -0.056 ± 0.024 (82/100)",
        "remedy minus exact": "0.052 − 0.188 = -0.137 ± 0.019 (100/100)",
        "remedy minus reptile": "0.052 − 0.062 = -0.010 ± 0.008 (68/100)",
    }
    for name, cell in cells.items():
        assert cell in table, name
    text = (root / "README.md").read_text()
    part = " ".join(text.split("* **Seed 1, and the remedy's first seed**")[1].split("\n* **")[0].split())
    for value in re.findall(r"\b\d\.\d{3}\b", part):
        assert value in table or value in ("0.064", "0.055"), value
    for setting in ("Sinusoid-10-10", "CosMixture-50-50"):  # "ahead in every finished seed's interval", seeds 0, 1
        row = next(x for x in table.splitlines() if x.startswith(f"| {setting} | reptile-1000 minus maml-1000 |"))
        for cell in row.split("|")[3:5]:
            difference, half = (float(x) for x in re.search(r"= (-?[\d.]+) ± ([\d.]+)", cell).groups())
            assert difference + half < 0, (setting, cell)
    for quoted in ("91 of the 100 tasks", "82 of 100", "better on all 100 tasks", "better on 68 of 100"):
        assert quoted in part, quoted
    evals = load_run(root / "horizon" / "long" / "CosMixture-50-50" / "maml-normalized-1000" / "lr3e-3" / "seed0")
    last = [round(r["inner_mean"], 3) for r in evals["evals"]][-3:]
    assert last == [0.064, 0.055, 0.052] and int(evals["evals"][-1]["meta_step"]) == 5000  # "still falling"
    readme = " ".join((root.parent / "README.md").read_text().split())
    assert "(0.061 against 0.116, and 0.047 against 0.103)" in readme and "first seed reaches 0.052 there" in readme
    assert "(0.188)" in readme and "(0.062; paired −0.010 ± 0.008)" in readme


def test_seed_2_gives_the_cosmixture_verdict_from_the_pairs_and_the_curves():
    """results/README.md's "Seed 2: the verdict on CosMixture" and the README's lesson: the pair is a cell of
    horizon/directions.md, the verdict is its "lower in 3", and the curves' shapes (the exact gradient's swings with
    no trend, Reptile's fall, neither flat) are the committed evals' from 3,000 to 5,000 meta-steps."""
    from pathlib import Path

    from amaml_lab.studies.rundir import load_run

    root = Path(__file__).resolve().parents[2] / "results"
    table = (root / "horizon" / "directions.md").read_text()
    row = next(x for x in table.splitlines() if x.startswith("| CosMixture-50-50 | reptile-1000 minus maml-1000 |"))
    assert "| 0.066 − 0.191 = -0.125 ± 0.019 (100/100) |" in row and row.endswith("| lower in 3 |"), row
    part = " ".join(
        (root / "README.md").read_text().split("* **Seed 2: the verdict on CosMixture**")[1].split("\n* **")[0].split()
    )
    for value in ("0.066", "0.191", "−0.125 ± 0.019", "all 100 tasks", "three seeds of three"):
        assert value in part, value
    long = root / "horizon" / "long" / "CosMixture-50-50"
    curves = {
        (m, s): [r["inner_mean"] for r in load_run(long / m / "lr3e-3" / f"seed{s}")["evals"]][-5:]
        for m in ("maml-1000", "reptile-1000")
        for s in range(3)
    }
    exact = [c for (m, _), c in curves.items() if m == "maml-1000"]
    swings = max(abs(b - a) for c in exact for a, b in zip(c, c[1:]))
    assert f"{swings:.3f}" == "0.045" and "up to 0.045" in part
    assert all(any(b > a for a, b in zip(c, c[1:])) and any(b < a for a, b in zip(c, c[1:])) for c in exact)
    assert max(abs(c[-1] - c[0]) for c in exact) < 0.0135 and "within 0.013" in part  # "no trend"
    falls = sorted(c[0] - c[-1] for (m, _), c in curves.items() if m == "reptile-1000")
    assert [f"{x:.3f}" for x in (falls[0], falls[-1])] == ["0.013", "0.026"] and "by 0.013 to 0.026" in part
    assert "Neither has flattened" in part
    readme = " ".join((root.parent / "README.md").read_text().split())
    assert "seed 2 on CosMixture (0.066 against 0.191)" in readme and "three seeds of three" in readme


def test_seed_2_on_sinusoid_gives_the_verdict_on_both_settings():
    """results/README.md's "Seed 2 on Sinusoid": the pair is a cell of horizon/directions.md, both settings read
    "lower in 3", and the swings it quotes are the committed evals' over the last 2,000 meta-steps."""
    from pathlib import Path

    from amaml_lab.studies.rundir import load_run

    root = Path(__file__).resolve().parents[2] / "results"
    table = (root / "horizon" / "directions.md").read_text()
    rows = {x.split("|")[1].strip(): x for x in table.splitlines() if "| reptile-1000 minus maml-1000 |" in x}
    assert "| 0.045 − 0.060 = -0.015 ± 0.013 (73/100) |" in rows["Sinusoid-10-10"]
    assert all(row.endswith("| lower in 3 |") for row in rows.values()) and len(rows) == 2
    readme = (root / "README.md").read_text()
    part = " ".join(
        readme.split("* **Seed 2 on Sinusoid: the verdict on both settings**")[1].split("\n* **")[0].split()
    )
    for quoted in ("0.045", "0.060", "−0.015 ± 0.013", "73 of the 100 tasks", "three seeds of three"):
        assert quoted in part, quoted
    long = root / "horizon" / "long" / "Sinusoid-10-10"
    swings = {}
    for method, rate in (("maml-1000", "lr1e-2"), ("reptile-1000", "lr3e-2")):
        curves = [
            [r["inner_mean"] for r in load_run(long / method / rate / f"seed{s}")["evals"]][-5:] for s in range(3)
        ]
        swings[method] = max(abs(b - a) for c in curves for a, b in zip(c, c[1:]))
    assert f"{swings['maml-1000']:.3f}" == "0.071" and f"{swings['reptile-1000']:.3f}" == "0.020"
    assert "the exact gradient's by up to 0.071, Reptile's by up to 0.020" in part
    lesson = " ".join((root.parent / "README.md").read_text().split())
    assert (
        "and on Sinusoid (0.045 against 0.060): on both Reptile's direction is ahead in every seed's interval" in lesson
    )


def test_the_remedys_three_seeds_are_quoted_from_the_pairs_and_its_curve():
    """results/README.md's "The remedy's seeds 1 and 2" and the README's lesson: the pairs are cells of
    horizon/directions.md, the verdicts over three seeds are its last column, and seed 1's rise at the last
    evaluation is the committed evals'."""
    from pathlib import Path

    from amaml_lab.studies.rundir import load_run

    root = Path(__file__).resolve().parents[2] / "results"
    table = (root / "horizon" / "directions.md").read_text()
    rows = {x.split("|")[2].strip(): x for x in table.splitlines() if "| maml-normalized-1000 minus" in x}
    exact, reptile = rows["maml-normalized-1000 minus maml-1000"], rows["maml-normalized-1000 minus reptile-1000"]
    for cell in ("0.060 − 0.116 = -0.056 ± 0.009 (95/100)", "0.047 − 0.191 = -0.144 ± 0.020 (100/100)"):
        assert f"| {cell} |" in exact, cell
    for cell in ("0.060 − 0.061 = -0.001 ± 0.006 (62/100)", "0.047 − 0.066 = -0.019 ± 0.005 (79/100)"):
        assert f"| {cell} |" in reptile, cell
    assert exact.endswith("| lower in 3 |") and reptile.endswith("| unresolved in 3 |")
    text = (root / "README.md").read_text()
    part = " ".join(
        text.split("* **The remedy's seeds 1 and 2: its verdict over three seeds**")[1].split("\n* **")[0].split()
    )
    for quoted in (
        "−0.056 ± 0.009",
        "−0.144 ± 0.020",
        "−0.001 ± 0.006",
        "−0.019 ± 0.005",
        '"lower in 3"',
        '"unresolved in 3"',
    ):
        assert quoted in part, quoted
    run = root / "horizon" / "long" / "CosMixture-50-50" / "maml-normalized-1000" / "lr3e-3" / "seed1"
    last = [(int(r["meta_step"]), round(r["inner_mean"], 3)) for r in load_run(run)["evals"]][-2:]
    assert last == [(4500, 0.053), (5000, 0.060)] and "(seed 1 rose from 0.053 at 4,500 to 0.060 at 5,000)" in part
    lesson = " ".join((root.parent / "README.md").read_text().split())
    assert "over three seeds it beats plain exact maml in every interval and is level with Reptile or ahead" in lesson


def test_the_directions_section_quotes_the_finished_pairs_and_the_diagnosis():
    """results/README.md's "Seed 0 at 5,000 meta-steps" and "Why, so far": every number is in horizon/directions.md
    (the pairs, made from the folders) or is the diagnosis files' (the spread of the directions' sizes, Adam's memory
    and step, the agreement), and the curves' shapes it describes are the committed evals'."""
    import json
    import re
    from pathlib import Path

    from amaml_lab.studies import directions
    from amaml_lab.studies.rundir import load_run

    root = Path(__file__).resolve().parents[2] / "results"
    text = (root / "README.md").read_text()
    seed0 = text.split("* **Seed 0 at 5,000 meta-steps**")[1].split("\n* **")[0]
    table = (root / "horizon" / "directions.md").read_text()
    for quoted in ("0.062 − 0.188 = -0.127 ± 0.021 (96/100)", "0.047 − 0.088 = -0.040 ± 0.012 (78/100)"):
        assert quoted in table, quoted
    for value in re.findall(r"\b\d\.\d{3}\b", seed0):
        assert value in table, value
    assert "96 of the 100 tasks" in seed0 and "78 of\n  100" in seed0
    long = root / "horizon" / "long" / "CosMixture-50-50"
    exact = {int(r["meta_step"]): r["inner_mean"] for r in load_run(long / "maml-1000" / "lr3e-3" / "seed0")["evals"]}
    first = [r["inner_mean"] for r in load_run(long / "reptile-1000" / "lr3e-3" / "seed0")["evals"]]
    assert exact[3000] > exact[2500], exact  # "rises between 2,500 and 3,000 meta-steps"
    assert all(b < a for a, b in zip(first, first[1:])), first  # "Reptile's falls at every evaluation"
    assert "still at 5,000: neither curve had flattened" in " ".join(seed0.split()) and first[-1] < first[-2]
    why = text.split("* **Why, so far**")[1].split("\n* **")[0]
    found = directions.diagnoses(root / "horizon", "CosMixture-50-50")
    along = directions.diagnoses_along(root / "horizon", "CosMixture-50-50", "reptile-1000", "3e-3")
    exact_run = directions.diagnoses_along(root / "horizon", "CosMixture-50-50", "maml-1000", "3e-3")
    rows = {r["theta"]: r for r in directions.scale_rows({**found, **{f"at {k}": d for k, d in along.items()}})}
    own_run = directions.scale_rows({f"exact at {k}": d for k, d in exact_run.items()})
    tails = [r["exact"] for k, r in rows.items() if k.startswith("at ")]
    own = [r["reptile"] for r in rows.values() if r["steps"] == 1000]
    memory = [rows[k]["sqrt_v_over_rms"] for k in rows if k == "reptile-1000" or k.startswith("at ")]
    stated = {
        "13.5 times": round(rows["maml-1000"]["exact"], 1) == 13.5,
        "9.5 to 20 times": (round(min(tails), 1), round(max(tails))) == (9.5, 20),
        "1.1 to 2.3 times": (round(min(own), 1), round(max(own), 1)) == (1.1, 2.3),
        "2.2 times": round(rows["maml-1000"]["sqrt_v_over_rms"], 1) == 2.2,
        "0.9 to 1.4": (round(min(memory), 1), round(max(memory), 1)) == (0.9, 1.4),
        "0.14 against Reptile's 0.31": (
            round(rows["maml-1000"]["adam_step"], 2),
            round(rows["reptile-1000"]["adam_step"], 2),
        )
        == (0.14, 0.31),
        "4.4 to 13.2 times": len(own_run) == 4
        and (round(min(r["sqrt_v_over_rms"] for r in own_run), 1), round(max(r["sqrt_v_over_rms"] for r in own_run), 1))
        == (4.4, 13.2),
        "the step 0.02 to 0.12": (
            round(min(r["adam_step"] for r in own_run), 2),
            round(max(r["adam_step"] for r in own_run), 2),
        )
        == (0.02, 0.12),
        "0.32 against Reptile's 0.92": [
            round(found["maml-1000"]["directions"]["1000"][d]["pairwise_cosine"], 2) for d in ("exact", "reptile")
        ]
        == [0.32, 0.92],
    }
    sinusoid = {  # the exact run's own θs diagnosed at meta-steps 1,000 (Adam 1e-3) to 4,000 (its chosen 1e-2)
        step: json.loads(
            directions.diagnosis_path(root / "horizon", "Sinusoid-10-10", "maml-1000", rate, step).read_text()
        )
        for step, rate in ((1000, "1e-3"), (2000, "1e-2"), (3000, "1e-2"), (4000, "1e-2"))
    }
    tail = [d["scale"]["exact"]["max_over_median"] for d in sinusoid.values()]
    memory = [d["scale"]["exact"]["sqrt_v_over_rms"] for d in sinusoid.values()]
    reptile = [
        r["sqrt_v_over_rms"]
        for r in directions.scale_rows(
            {
                step: json.loads(
                    directions.diagnosis_path(
                        root / "horizon", "Sinusoid-10-10", "reptile-1000", rate, step
                    ).read_text()
                )
                for step, rate in ((1000, "1e-3"), (2000, "3e-2"), (3000, "3e-2"), (4000, "3e-2"), (5000, "3e-2"))
            }
        )
    ]
    stated["4.8 to 21.6 times"] = (round(min(tail), 1), round(max(tail), 1)) == (4.8, 21.6)
    stated["(1.1 to 1.8, like Reptile's own 1.6 to 2.0)"] = (round(min(memory), 1), round(max(memory), 1)) == (
        1.1,
        1.8,
    ) and (round(min(reptile), 1), round(max(reptile), 1)) == (1.6, 2.0)
    for phrase, holds in stated.items():
        assert phrase in " ".join(why.split()) and holds, phrase


def test_the_paper_length_plan_quotes_its_measured_costs():
    """results/README.md's "The paper's experiments at their own length": every cost is results/paper/speeds.md's
    (results/paper_speeds.py), and so is the shape it names (CosMixture2D 50/50 measured slower than 100/100)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    speeds = (root / "paper" / "speeds.md").read_text()
    part = " ".join(
        (root / "README.md")
        .read_text()
        .split("## The paper's experiments at their own length")[1]
        .split("\n## ")[0]
        .split()
    )

    def cells(prefix: str) -> list[str]:
        line = next(x for x in speeds.splitlines() if x.startswith(prefix))
        return [c.strip() for c in line.strip("|").split("|")]

    eager, compiled = cells("| CosMixture 50 50 | adjoint-100 |")[2:4]
    assert f"compiled, adjoint-100 takes {compiled} s a meta-step on CosMixture 50/50 against {eager} s eager" in part
    hours = re.search(r"the pair ([\d.]+) CPU-hours, the pair and the other methods ([\d.]+) CPU-hours", speeds)
    assert f"take {hours[1]} CPU-hours for the pair and {hours[2]} with the other methods" in part
    images = re.search(r"together take ([\d.]+) CPU-hours per 1,000 meta-steps of each .* so (\d+) CPU-hours", speeds)
    assert f"nine runs take {images[1]} CPU-hours per 1,000 meta-steps of each, and {images[2]} if" in part
    eager, compiled = cells("| maml-10 |")[1:3]
    assert f"maml took {compiled} s against {eager} s eager" in part and float(compiled) < float(eager)
    small, large = (float(cells(f"| CosMixture2D {n} | adjoint-100 |")[3]) for n in ("50 50", "100 100"))
    assert small > large and "CosMixture2D 50/50 measured slower than 100/100" in part
    assert "1,000 meta-steps old, or at 10,000 meta-steps" in part and "--validation-characters 20" in part
