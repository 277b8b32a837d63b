"""Omniglot: the loader on generated zips in the official layout and on the real small subsets, Conv-4, every method."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from amaml_lab import meta_gradient, meta_gradient_batch
from amaml_lab.models import conv4
from amaml_lab.tasks import omniglot
from amaml_lab.training.builders import build_model
from amaml_lab.training.config import RunConfig
from amaml_lab.training.train import comln_batch_gradient

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
ALL_METHODS = "maml,fomaml,reptile,imaml,adjoint,comln"


def write_archive(path: Path, alphabets=2, characters=3, drawings=6, seed=0) -> str:
    """A zip in the official layout (ROOT/ALPHABET/characterNN/XXXX_YY.png, 105 x 105 binary PNGs); returns its MD5."""
    from PIL import Image, ImageDraw

    g = torch.Generator().manual_seed(seed)
    root = path.stem
    with zipfile.ZipFile(path, "w") as zf:
        for a in range(alphabets):
            for c in range(characters):
                for d in range(drawings):
                    im = Image.new("1", (105, 105), 1)  # white background, black strokes, as the originals
                    draw = ImageDraw.Draw(im)
                    pts = (torch.rand(4, generator=g) * 80 + 10).tolist()
                    draw.line(pts, fill=0, width=6)
                    draw.rectangle([10 + 10 * c, 10 + 10 * a, 30 + 10 * c, 30 + 10 * a], outline=0, width=4)
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    zf.writestr(
                        f"{root}/Alphabet{seed}.{a}/character{c + 1:02d}/{a:02d}{c:02d}_{d + 1:02d}.png", buf.getvalue()
                    )
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def small_root(tmp_path, monkeypatch):
    """Generated stand-ins for the two small subsets; the expected MD5s set to theirs for this test."""
    for i, name in enumerate(omniglot.SUBSETS["small"]):
        monkeypatch.setitem(omniglot.ARCHIVES, name, write_archive(tmp_path / name, seed=i, characters=3 + i))
    return tmp_path


def test_reads_the_official_layout(small_root):
    data = omniglot.load(small_root)
    assert data.subset == "small"
    assert data.train.shape == (4 * 2 * 3, 6, 28, 28) and data.test.shape == (4 * 2 * 4, 6, 28, 28)
    assert data.train_characters[0] == "Alphabet0.0/character01"
    assert 0.0 <= float(data.train.min()) and float(data.train.max()) <= 1.0
    assert float(data.train.mean()) < 0.5  # inverted: strokes are 1, the background 0
    first = data.train[0, 0]  # rotations are new classes: class 6 is class 0 turned by 90 degrees
    torch.testing.assert_close(data.train[6, 0], torch.rot90(first, 1, dims=(0, 1)))


def test_full_set_split_is_seeded_and_disjoint(tmp_path, monkeypatch):
    for i, name in enumerate(omniglot.SUBSETS["full"]):
        monkeypatch.setitem(omniglot.ARCHIVES, name, write_archive(tmp_path / name, seed=10 + i))
    a = omniglot.load(tmp_path, subset="auto", train_characters=8)
    b = omniglot.load(tmp_path, subset="full", train_characters=8)
    assert a.subset == "full" and a.train_characters == b.train_characters
    assert len(a.train_characters) == 8 and len(a.test_characters) == 4
    assert not set(a.train_characters) & set(a.test_characters)
    with pytest.raises(ValueError, match="train_characters must be in 1..11"):
        omniglot.load(tmp_path, subset="full", train_characters=12)


def test_checksum_mismatch_and_missing_files_say_what_to_do(tmp_path):
    (tmp_path / "images_background_small1.zip").write_bytes(b"not a zip")
    with pytest.raises(
        ValueError,
        match=r"images_background_small1.zip has MD5 .*not e704a628b5459e08445c13499850abc4;"
        r" delete it and download .*brendenlake/omniglot",
    ):
        omniglot.locate("images_background_small1.zip", tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"images_background_small2.zip is not under --data-root .*download"
        r" https://raw.githubusercontent.com/brendenlake/omniglot/master/python/",
    ):
        omniglot.locate("images_background_small2.zip", tmp_path)
    with pytest.raises(ValueError, match="subset=.large. is not known; allowed values: auto, full, small, demo"):
        omniglot.load(tmp_path, subset="large")


def test_episodes_are_seeded_and_balanced(small_root):
    data = omniglot.load(small_root)
    (xs, ys), (xq, yq) = omniglot.episodes(data.train, 3, 5, 2, 3, torch.Generator().manual_seed(4))
    assert xs.shape == (3, 10, 1, 28, 28) and xq.shape == (3, 15, 1, 28, 28)
    assert ys[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and yq.shape == (3, 15)
    again = omniglot.episodes(data.train, 3, 5, 2, 3, torch.Generator().manual_seed(4))
    assert torch.equal(again[0][0], xs)
    for b in range(3):  # no drawing is both a support and a query point
        for k in range(5):
            shots = xs[b, 2 * k : 2 * k + 2].flatten(1)
            queries = xq[b, 3 * k : 3 * k + 3].flatten(1)
            assert len(torch.unique(torch.cat([shots, queries]), dim=0)) == 5
    with pytest.raises(ValueError, match="shots \\+ query = 7 is more than the 6 drawings"):
        omniglot.episodes(data.train, 1, 5, 3, 4, torch.Generator())
    with pytest.raises(ValueError, match="ways=30 is more than the 24 classes"):
        omniglot.episodes(data.train, 1, 30, 1, 1, torch.Generator())


def _ce(model):
    def loss(params, data):
        x, y = data
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    return loss


def _episodes(small_root, ways=3, count=2, dtype=torch.float64):
    data = omniglot.load(small_root)
    (xs, ys), (xq, yq) = omniglot.episodes(data.train, count, ways, 1, 2, torch.Generator().manual_seed(0))
    return (xs.to(dtype), ys), (xq.to(dtype), yq)


def test_conv4_batch_norm_without_running_statistics_under_vmap(small_root):
    model = conv4(3, hidden=8, dtype=torch.float64)
    assert [k for k, _ in model.named_parameters()][-2:] == ["head.weight", "head.bias"]
    assert not list(model.buffers())  # no running statistics
    support, query = _episodes(small_root)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    batch = meta_gradient_batch(
        _ce(model), _ce(model), theta, support, query, method="maml", steps=3, step_size=0.1, solver="euler"
    )
    assert batch.stats["vectorized"] is True
    for b in range(2):  # the vmapped batch equals each task alone
        one = meta_gradient(
            lambda p, b=b: _ce(model)(p, (support[0][b], support[1][b])),
            lambda p, b=b: _ce(model)(p, (query[0][b], query[1][b])),
            theta,
            method="maml",
            steps=3,
            step_size=0.1,
            solver="euler",
        )
        for k in theta:
            torch.testing.assert_close(batch.grads[k][b], one.grad[k], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="ways must be an integer >= 2"):
        conv4(1)


def test_discrete_adjoint_equals_maml_on_conv4(small_root):
    model = conv4(3, hidden=6, dtype=torch.float64)
    support, query = _episodes(small_root, count=1)
    sl = lambda p: _ce(model)(p, (support[0][0], support[1][0]))  # noqa: E731
    ql = lambda p: _ce(model)(p, (query[0][0], query[1][0]))  # noqa: E731
    theta = {k: v.detach() for k, v in model.named_parameters()}
    kw = dict(steps=4, step_size=0.1, solver="midpoint")
    ref = meta_gradient(sl, ql, theta, method="maml", **kw).grad
    adj = meta_gradient(sl, ql, theta, method="adjoint", scheme="discrete", **kw).grad
    num = sum(float((adj[k] - ref[k]).norm() ** 2) for k in ref) ** 0.5
    den = sum(float(ref[k].norm() ** 2) for k in ref) ** 0.5
    assert num / den < 1e-10


def test_comln_gradient_equals_maml_with_only_the_head_adapting(small_root):
    cfg = RunConfig(
        "Omniglot",
        1,
        2,
        4,
        method="comln",
        ways=3,
        hidden=6,
        dtype="float64",
        solver="rk4",
        step_size=0.2,
        options={"scheme": "discrete"},
    ).resolved()
    model = build_model(cfg)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    support, query = _episodes(small_root, count=2)
    grads, loss, horizon_grad = comln_batch_gradient(model, theta, support, query, cfg)
    assert horizon_grad is None
    ref = meta_gradient_batch(
        _ce(model),
        _ce(model),
        theta,
        support,
        query,
        method="maml",
        steps=4,
        step_size=0.2,
        solver="rk4",
        adapt=["head.weight", "head.bias"],
    )
    assert abs(loss - ref.query_loss) < 1e-12
    num = sum(float((grads[k] - ref.grad[k]).norm() ** 2) for k in theta) ** 0.5
    den = sum(float(ref.grad[k].norm() ** 2) for k in theta) ** 0.5
    assert num / den < 1e-9
    assert float(grads["features.0.weight"].norm()) > 0  # the embedding gets its meta-gradient


def test_every_method_runs_from_the_command_line(small_root, tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "compare",
        "Omniglot",
        1,
        2,
        2,
        "cpu",
        "--ways",
        3,
        "--methods",
        ALL_METHODS,
        "--meta-steps",
        2,
        "--meta-batch",
        2,
        "--hidden",
        4,
        "--eval-tasks",
        5,
        "--data-root",
        small_root,
        "--out",
        tmp_path / "cmp",
        "--quiet",
    )
    assert code == 0, err
    rows = (tmp_path / "cmp" / "table.md").read_text()
    for method in ALL_METHODS.split(","):
        summary = json.loads((tmp_path / "cmp" / method / "summary.json").read_text())
        assert summary["status"] == "done" and summary["final"]["eval_tasks"] == 5
        assert 0.0 <= summary["final"]["accuracy"] <= 1.0 and summary["final"]["subset"] == "small"
        assert f"| {method} | 2 |" in rows


def test_omniglot_resume_equals_uninterrupted(small_root, tmp_path, capsys):
    args = [
        "run",
        "Omniglot",
        1,
        2,
        2,
        "cpu",
        "--ways",
        3,
        "--meta-batch",
        2,
        "--hidden",
        4,
        "--eval-tasks",
        6,
        "--checkpoint-every",
        1,
        "--data-root",
        small_root,
        "--quiet",
    ]
    assert run_cli(capsys, *args, "--meta-steps", 4, "--out", tmp_path / "a")[0] == 0
    assert run_cli(capsys, *args, "--meta-steps", 2, "--out", tmp_path / "b")[0] == 0
    assert run_cli(capsys, *args, "--meta-steps", 4, "--out", tmp_path / "b", "--resume")[0] == 0
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert a["final"] == b["final"]


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["run", "Omniglot", 1, 2, 2, "cpu", "--ways", 1], "argument --ways: must be an integer >= 2; got '1'"),
        (["run", "Omniglot", 1, 2, 2, "cpu", "--data-root", "/nowhere"], "is not under --data-root /nowhere; download"),
        (["run", "Sinusoid", 1, 2, 2, "cpu", "--method", "comln"], "method='comln' adapts a classifier's linear head"),
    ],
)
def test_omniglot_bad_input(capsys, args, pattern):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and pattern in err


@pytest.mark.skipif(
    not (REAL / "images_background_small1.zip").is_file(),
    reason="no local copy of Omniglot's small subsets in ../shared/data/omniglot",
)
def test_real_small_subsets_every_method(tmp_path, capsys):
    data = omniglot.load(REAL)
    assert (
        data.subset == "small"
        and data.train.shape == (4 * 136, 20, 28, 28)
        and data.test.shape == (4 * 156, 20, 28, 28)
    )
    code, out, err = run_cli(
        capsys,
        "compare",
        "Omniglot",
        1,
        2,
        2,
        "cpu",
        "--ways",
        5,
        "--methods",
        ALL_METHODS,
        "--meta-steps",
        1,
        "--meta-batch",
        2,
        "--hidden",
        8,
        "--eval-tasks",
        10,
        "--data-root",
        REAL,
        "--out",
        tmp_path,
        "--quiet",
    )
    assert code == 0, err
    assert all(
        json.loads((tmp_path / m / "summary.json").read_text())["status"] == "done" for m in ALL_METHODS.split(",")
    )


def test_demo_glyphs_are_labelled_as_such_and_run(tmp_path, capsys):
    data = omniglot.load(subset="demo")
    assert data.subset == "demo" and data.train.shape == (240, 20, 28, 28) and data.test.shape == (120, 20, 28, 28)
    assert 0.01 < float(data.train.mean()) < 0.5
    code, out, err = run_cli(
        capsys,
        "run",
        "Omniglot",
        1,
        2,
        2,
        "cpu",
        "--ways",
        3,
        "--subset",
        "demo",
        "--meta-steps",
        1,
        "--meta-batch",
        2,
        "--hidden",
        4,
        "--eval-tasks",
        4,
        "--out",
        tmp_path,
        "--quiet",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["subset"] == "demo"


def test_the_benchmark_measures_conv4():
    from amaml_lab.bench import worker

    row = worker.measure(
        dict(
            name="conv4-adjoint",
            steps=2,
            shots=1,
            hidden=64,
            step_size=0.01,
            solver="euler",
            dtype="float32",
            device="cpu",
            repeat=1,
            time_budget=10.0,
            seed=0,
        )
    )
    assert row["time_s"] > 0 and row["peak_mb"] >= 0


def test_comln_learns_its_horizon_and_resumes_exactly(small_root, tmp_path, capsys):
    args = [
        "run",
        "Omniglot",
        1,
        2,
        3,
        "cpu",
        "--ways",
        3,
        "--method",
        "comln",
        "--learn-horizon",
        "--meta-batch",
        2,
        "--hidden",
        4,
        "--eval-tasks",
        4,
        "--checkpoint-every",
        1,
        "--meta-lr",
        0.05,
        "--data-root",
        small_root,
        "--quiet",
    ]
    assert run_cli(capsys, *args, "--meta-steps", 4, "--out", tmp_path / "a")[0] == 0
    assert run_cli(capsys, *args, "--meta-steps", 2, "--out", tmp_path / "b")[0] == 0
    assert run_cli(capsys, *args, "--meta-steps", 4, "--out", tmp_path / "b", "--resume")[0] == 0
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert a["final"] == b["final"] and a["config"]["learn_horizon"] is True
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert a["final"]["horizon"] == pytest.approx(float(state["log_horizon"].exp()), rel=1e-12)
    assert a["final"]["horizon"] != pytest.approx(3 * 0.1, rel=1e-6)  # T moved from steps x step size


def test_learn_horizon_is_comlns():
    with pytest.raises(ValueError, match="learn_horizon=True meta-learns COMLN's horizon"):
        RunConfig("Omniglot", 1, 2, 3, method="maml", learn_horizon=True).resolved().check()


def _rows(images: torch.Tensor) -> set:
    """Each image as hashable bytes: which images two sets of classes share."""
    return {bytes(x.numpy().tobytes()) for x in images.reshape(-1, 28, 28)}


def test_validation_holds_out_whole_characters_seeded(small_root):
    """validation=k takes k meta-train characters out of training with all four rotations (a rotation trained on
    would leak the character), the same k for every build, and draws its episodes from them alone; the meta-test
    episodes do not move."""
    from amaml_lab.tasks.domains import OmniglotDomain

    plain, held = OmniglotDomain(3, small_root), OmniglotDomain(3, small_root, validation=2)
    chars = plain.train.shape[0] // 4  # 6 characters, 24 classes
    assert held.train.shape[0] == 4 * (chars - 2) and held.validation.shape[0] == 4 * 2
    assert plain.validation is None and torch.equal(plain.train, plain.data.train)
    assert not _rows(held.train) & _rows(held.validation)  # no image of a held-out character is trained on
    for c in range(chars):  # each character's four rotations all train or all validate
        rotations = [plain.data.train[r * chars + c] for r in range(4)]
        where = {bool(_rows(x) & _rows(held.validation)) for x in rotations}
        assert len(where) == 1, c
    assert torch.equal(OmniglotDomain(3, small_root, validation=2).validation, held.validation)
    val = held.eval_set(4, 1, 2, split="validation")
    assert _rows(val.support[0]) | _rows(val.target[0]) <= _rows(held.validation)
    for a, b in zip(plain.eval_set(4, 1, 2).support, held.eval_set(4, 1, 2).support):
        assert torch.equal(a, b)  # the meta-test episodes are the same with or without held-out characters
    gen = torch.Generator().manual_seed(0)
    (xs, _), (xq, _) = held.train_batch(gen, 5, 1, 2)
    assert not (_rows(xs) | _rows(xq)) & _rows(held.validation)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"validation": 6}, r"validation must be an integer in 0..5 \(held-out meta-train characters\); got 6"),
        ({"validation": -1}, r"validation must be an integer in 0..5"),
        ({"validation": True}, r"validation must be an integer in 0..5"),
    ],
)
def test_validation_bad_values(small_root, kwargs, pattern):
    from amaml_lab.tasks.domains import OmniglotDomain

    with pytest.raises(ValueError, match=pattern):
        OmniglotDomain(3, small_root, **kwargs)
    with pytest.raises(ValueError, match="split='validation' needs held-out characters"):
        OmniglotDomain(3, small_root).eval_set(2, 1, 2, split="validation")
    with pytest.raises(ValueError, match="validation_characters holds out Omniglot's meta-train characters"):
        RunConfig(domain="Sinusoid", shots=5, query=5, inner_steps=2, validation_characters=3).resolved().check()


def test_a_run_scores_its_validation_episodes_along_training(small_root, tmp_path, capsys):
    """--validation-characters: every evaluation along training scores the held-out characters' episodes
    (evals.csv's val_accuracy) beside the meta-test ones; the run trains on the others only."""
    import csv

    code, _, err = run_cli(
        capsys,
        "run",
        "Omniglot",
        1,
        2,
        2,
        "cpu",
        "--ways",
        3,
        "--meta-steps",
        2,
        "--meta-batch",
        2,
        "--hidden",
        4,
        "--eval-tasks",
        4,
        "--eval-interval",
        1,
        "--validation-characters",
        2,
        "--data-root",
        small_root,
        "--out",
        tmp_path,
        "--quiet",
    )
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "evals.csv").open()))
    assert [int(r["meta_step"]) for r in rows] == [0, 1, 2]
    assert all(0.0 <= float(r["val_accuracy_mean"]) <= 1.0 and 0.0 <= float(r["accuracy_mean"]) <= 1.0 for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["validation_characters"] == 2
    code, _, err = run_cli(capsys, "run", "Sinusoid", 5, 5, 2, "cpu", "--validation-characters", 2)
    assert code == 2 and "validation_characters holds out Omniglot's" in err


@pytest.mark.parametrize("meta_steps", [3, 4])
def test_the_final_evaluation_is_the_last_thetas(small_root, tmp_path, capsys, meta_steps):
    """Evaluated every 2 meta-steps: at 4 the final evaluation reuses the one along training at the same θ, at 3 it
    evaluates afresh; either way each episode's accuracy is that of the final θ evaluated now."""
    from amaml_lab.tasks.domains import load_domain
    from amaml_lab.training.config import config_of
    from amaml_lab.training.evaluate import evaluate_episodes

    code, _, err = run_cli(
        capsys,
        *("run", "Omniglot", 1, 2, 2, "cpu", "--ways", 3, "--meta-batch", 2, "--hidden", 4, "--eval-tasks", 40),
        *("--meta-lr", 0.3),  # large steps: θ at 3 scores other accuracies than θ at 2
        *("--meta-steps", meta_steps, "--eval-interval", 2, "--data-root", small_root, "--out", tmp_path, "--quiet"),
    )
    assert code == 0, err
    cfg = config_of(json.loads((tmp_path / "summary.json").read_text())).resolved().check()
    domain = load_domain("Omniglot", 1, 2, data_root=small_root, ways=3)
    model = build_model(cfg, None)
    theta = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["theta"]
    fresh = evaluate_episodes(model, theta, domain.eval_set(40, 1, 2), cfg, show_progress=False)
    saved = [float(line.split(",")[1]) for line in (tmp_path / "eval.csv").read_text().splitlines()[1:]]
    assert saved == fresh.tolist()
