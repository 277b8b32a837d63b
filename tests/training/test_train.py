"""Meta-training and evaluation: resumed runs equal uninterrupted ones; fine-tuning all tasks at once equals one by
one."""

import json
from pathlib import Path

import pytest
import torch

from amaml_lab.metagrad import meta_gradient
from amaml_lab.tasks.domains import EvalSet, load_domain
from amaml_lab.training.builders import build_model, losses_for
from amaml_lab.training.config import RunConfig
from amaml_lab.training.evaluate import evaluate, evaluate_inner_loop
from amaml_lab.training.runs import run
from amaml_lab.training.train import Diverged, meta_train


def config(**kw):
    base = dict(
        domain="Sinusoid",
        shots=5,
        query=5,
        inner_steps=3,
        method="adjoint",
        meta_steps=6,
        tasks=4,
        pool=20,
        hidden=4,
        checkpoint_every=2,
        meta_batch=2,
        step_size=0.05,
        eval_tasks=3,
        eval_steps=20,
    )
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("optimizer,normalize", [("sgd", False), ("adam", False), ("adam", True)])
def test_resume_equals_uninterrupted(tmp_path, optimizer, normalize):
    kw = dict(optimizer=optimizer, normalize_grad=normalize)
    whole = meta_train(config(**kw), tmp_path / "a")
    meta_train(config(**kw, meta_steps=4), tmp_path / "b")
    resumed = meta_train(config(**kw), tmp_path / "b", resume=True)
    assert resumed["meta_steps"] == whole["meta_steps"] == 6
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])
    assert whole["losses"] == resumed["losses"]


def _first_step(tmp_path, name, **kw):
    """(theta before, theta after) one meta-step of the small run."""
    seen = []

    def keep(step, theta, model, domain, horizon):
        seen.append({k: v.clone() for k, v in theta.items()})
        return {"meta_step": step}

    out = meta_train(config(meta_steps=1, eval_interval=1, **kw), tmp_path / name, on_eval=keep)
    return seen[0], out["theta"]


def test_a_normalized_gradient_moves_theta_by_the_learning_rate_along_the_plain_step(tmp_path):
    """With SGD one normalised meta-step is -lr g / |g| (the norm over all of theta, not per tensor): the plain step
    rescaled to length lr, from the same start."""
    start, plain = _first_step(tmp_path, "plain", optimizer="sgd", meta_lr=0.3)
    start_n, normed = _first_step(tmp_path, "normed", optimizer="sgd", meta_lr=0.3, normalize_grad=True)
    flat = lambda theta, origin: torch.cat([(theta[k] - origin[k]).reshape(-1) for k in sorted(theta)])  # noqa: E731
    step, step_n = flat(plain, start), flat(normed, start_n)
    assert all(torch.equal(start[k], start_n[k]) for k in start)
    assert abs(float(step.norm()) - 0.3) > 1e-3  # the plain step is not already of length lr
    torch.testing.assert_close(step_n, 0.3 * step / step.norm(), rtol=1e-10, atol=1e-12)


def test_resume_after_a_kill_between_checkpoints(tmp_path):
    """A run killed after step 5 (checkpoint at 4) resumes from 4 and still ends where the uninterrupted one does."""
    whole = meta_train(config(checkpoint_every=4, meta_steps=8), tmp_path / "a")

    def kill(step, losses, seconds, evals):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        meta_train(config(checkpoint_every=4, meta_steps=8), tmp_path / "b", on_checkpoint=kill)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["meta_steps"] == 4
    resumed = meta_train(config(checkpoint_every=4, meta_steps=8), tmp_path / "b", resume=True)
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile", "imaml", "truncated"])
def test_every_method_trains(tmp_path, method):
    options = {"truncate": 2} if method == "truncated" else {}
    out = meta_train(config(method=method, meta_steps=2, options=options), tmp_path)
    assert out["meta_steps"] == 2 and all(torch.isfinite(torch.tensor(out["losses"])))


def test_training_lowers_the_query_loss(tmp_path):
    run_ = meta_train(config(meta_steps=40, meta_lr=0.05, checkpoint_every=40), tmp_path)
    first, last = sum(run_["losses"][:8]) / 8, sum(run_["losses"][-8:]) / 8
    assert last < first


def test_resume_refuses_another_configuration(tmp_path):
    meta_train(config(meta_steps=2), tmp_path)
    with pytest.raises(ValueError, match="another configuration .*differs in shots"):
        meta_train(config(meta_steps=4, shots=6), tmp_path, resume=True)


def test_run_refuses_to_overwrite_without_resume(tmp_path):
    run(config(meta_steps=2), tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="already holds a run .*--resume"):
        run(config(meta_steps=2), tmp_path, show_progress=False)


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config(step_size=60.0, meta_lr=50.0, meta_steps=40, checkpoint_every=1, inner_steps=2)
    with pytest.raises(Diverged, match="smaller --step-size"):
        run(cfg, tmp_path, show_progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert summary["status"] == "diverged" and summary["meta_steps"] == state["meta_steps"] >= 1
    assert all(torch.isfinite(v).all() for v in state["theta"].values())


def test_batched_fine_tuning_equals_one_task_at_a_time():
    cfg = config()
    domain = load_domain("Sinusoid", 5, 5, tasks=4, pool=20)
    model = build_model(cfg, 1)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    evalset = domain.eval_set(3, 5, 5)
    together = evaluate(model, theta, evalset, steps=30, every=10, show_progress=False)
    assert together["iterations"] == [0, 10, 20, 30]
    for b in range(3):
        one = EvalSet(tuple(t[b : b + 1] for t in evalset.support), tuple(t[b : b + 1] for t in evalset.target))
        alone = evaluate(model, theta, one, steps=30, every=10, show_progress=False)
        torch.testing.assert_close(alone["nrmse"][0], together["nrmse"][b], rtol=1e-12, atol=1e-12)
    # and the first entry is the RMSE of theta itself
    x, y = evalset.target
    with torch.no_grad():
        direct = ((model(x[0]) - y[0]) ** 2).mean().sqrt()
    assert abs(float(direct) - float(together["nrmse"][0, 0])) < 1e-12


def test_fine_tuning_fits_the_support_set():
    cfg = config()
    domain = load_domain("Sinusoid", 5, 5, tasks=4, pool=20)
    model = build_model(cfg, 1)
    evalset = domain.eval_set(3, 5, 5)
    on_support = EvalSet(evalset.support, evalset.support)
    curve = evaluate(model, dict(model.named_parameters()), on_support, steps=300, every=100, show_progress=False)
    assert bool((curve["nrmse"][:, -1] < 0.5 * curve["nrmse"][:, 0]).all())


def test_periodic_evaluations_survive_a_kill(tmp_path):
    """evals.csv rows come every eval_interval meta-steps from step 0; a killed, resumed run has the same rows."""
    cfg = config(meta_steps=8, checkpoint_every=4, eval_interval=2)
    run(cfg, tmp_path / "a", show_progress=False)

    def kill(step, losses, seconds, evals):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        meta_train(cfg, tmp_path / "b", on_checkpoint=kill, on_eval=lambda step, *a, **k: {"meta_step": step})
    # the killed run's evaluations were placeholders; a resumed run keeps them and adds the rest
    resumed = meta_train(cfg, tmp_path / "b", resume=True, on_eval=lambda step, *a, **k: {"meta_step": step})
    assert [e["meta_step"] for e in resumed["evals"]] == [0, 2, 4, 6, 8]
    rows = (tmp_path / "a" / "evals.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "2", "4", "6", "8"]
    header = rows[0].split(",")
    assert {"inner_mean", "inner_se", "inner_std", "ft10_mean", "finetuned_mean", "theta_mean"} <= set(header)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["finetuned_mean"]) == pytest.approx(summary["final"]["nrmse"], abs=1e-12)
    assert float(last["inner_mean"]) == pytest.approx(summary["final"]["nrmse_inner"], abs=1e-12)


@pytest.mark.parametrize("method,reg", [("adjoint", 1.0), ("imaml", 2.0)])
def test_inner_loop_error_is_the_method_own_adaptation(method, reg):
    """evaluate_inner_loop's per-task nRMSE equals the RMSE at meta_gradient's adapted parameters, task by task
    (imaml adapts with its own proximal weight lam = 2)."""
    cfg = config(method=method).resolved()
    domain = load_domain("Sinusoid", 5, 5, tasks=4, pool=20)
    model = build_model(cfg, 1)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    evalset = domain.eval_set(3, 5, 5)
    errors = evaluate_inner_loop(model, theta, evalset, cfg, chunk=2, show_progress=False)
    support_loss, _ = losses_for(cfg, model)
    for b in range(3):
        sx, sy = evalset.support[0][b].double(), evalset.support[1][b].double()
        tx, ty = evalset.target[0][b].double(), evalset.target[1][b].double()
        r = meta_gradient(
            lambda p, sx=sx, sy=sy: support_loss(p, (sx, sy)),
            lambda p, tx=tx, ty=ty: support_loss(p, (tx, ty)),
            theta,
            method="maml",
            steps=cfg.inner_steps,
            step_size=cfg.step_size,
            reg=reg,
        )
        assert float(errors[b]) == pytest.approx(float((2 * r.query_loss) ** 0.5), rel=1e-10)


def test_resume_accepts_a_checkpoint_from_before_a_new_field(tmp_path):
    """A checkpoint written before a config field existed resumes when the field is at its default."""
    meta_train(config(meta_steps=2), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["config"]["protocol"]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert meta_train(config(meta_steps=4), tmp_path, resume=True)["meta_steps"] == 4


@pytest.mark.parametrize(
    "kw,pattern",
    [
        (dict(domain="Ackley"), "domain='Ackley' is not known"),
        (dict(method="sgd"), "method='sgd' is not known; allowed values: maml, adjoint"),
        (dict(shots=0), "shots must be an integer >= 1"),
        (dict(query=0), "query must be an integer >= 1"),
        (dict(inner_steps=-1), "inner_steps must be an integer >= 1"),
        (dict(meta_steps=0), "meta_steps must be an integer >= 1"),
        (dict(optimizer="rmsprop"), "optimizer='rmsprop' is not known; allowed values: sgd, adam"),
        (dict(solver="dopri5"), "solver='dopri5' is not known; allowed values: euler, midpoint, rk4"),
        (dict(dtype="float16"), "dtype='float16' is not known"),
        (dict(device="gpu"), "device='gpu' is not known; allowed values: cpu, cuda"),
        (dict(step_size=0.0), "step_size must be a positive number"),
        (dict(options={"lam": 2.0}), "option lam=2.0 is not known to method='adjoint'"),
        (dict(eval_interval=-1), "eval_interval must be an integer >= 0"),
        (dict(protocol="paper"), "protocol='paper' is not known; allowed values: kit, reference"),
        (dict(normalize_grad=1), "normalize_grad must be True or False; got 1"),
        (
            dict(compile_wait=True),
            "compile_wait must be True \\(with compile=True\\) or False; got True with compile=False",
        ),
    ],
)
def test_bad_config(tmp_path, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        meta_train(config(**kw), tmp_path)


def test_reference_protocol_resumes_and_differs_from_the_kit(tmp_path):
    whole = meta_train(config(protocol="reference", domain="CosMixture"), tmp_path / "a")
    meta_train(config(protocol="reference", domain="CosMixture", meta_steps=4), tmp_path / "b")
    resumed = meta_train(config(protocol="reference", domain="CosMixture"), tmp_path / "b", resume=True)
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])
    kit = meta_train(config(domain="CosMixture"), tmp_path / "c")
    assert whole["losses"] != kit["losses"]
    with pytest.raises(ValueError, match="protocol='reference' reproduces"):
        config(protocol="reference", domain="MovieLens100K").resolved().check()


def test_few_iteration_columns_are_the_curve_at_those_iterations():
    """ft10 and ft100 are the nRMSE after exactly 10 and 100 Adam iterations: each equals a separate fine-tuning
    of the same theta run for that many iterations (reading the log one entry late would give 20 and 110)."""
    from amaml_lab.tasks.domains import load_domain
    from amaml_lab.training.builders import build_model
    from amaml_lab.training.config import RunConfig
    from amaml_lab.training.evaluate import evaluate, regression_evaluation

    cfg = RunConfig("Sinusoid", 5, 5, 3, hidden=4, eval_steps=120, eval_tasks=3).resolved().check()
    evalset = load_domain("Sinusoid", 5, 5).eval_set(3, 5, 5)
    model = build_model(cfg, 1)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    per_task = regression_evaluation(model, theta, evalset, cfg, show_progress=False)["per_task"]
    for n in (10, 100):
        alone = evaluate(model, theta, evalset, steps=n, every=n, show_progress=False)["nrmse"][:, -1]
        assert torch.allclose(per_task[f"ft{n}"], alone, rtol=0, atol=1e-12), n


class _Compiling:
    """A stand-in for the compiling process: running for ``polls`` polls, then exited with ``code``."""

    def __init__(self, polls: int, code: int):
        self.left, self.code = polls, code

    def poll(self):
        if self.left:
            self.left -= 1
            return None
        return self.code

    def failure(self):
        return "RuntimeError: boom in the compiling process" if self.code else None

    def cache(self):  # what the process found in inductor's cache: its setting warm already
        return None if self.code else {"loaded": 2, "compiled": 0}


def _compile_elsewhere(monkeypatch, polls: int, code: int = 0):
    """The run's compiling process replaced by a stand-in; each meta-step's compile flag, and the launches."""
    from amaml_lab.training import train

    real, calls, launched = train.batch_gradient, [], []
    monkeypatch.setattr(train, "_launch", lambda *args: launched.append(args) or _Compiling(polls, code))

    def recorded(cfg, model, theta, support, query, losses=None, stacked=None, horizon=None, compile=None):
        calls.append(compile)
        return real(cfg, model, theta, support, query, losses, stacked, horizon, compile)

    monkeypatch.setattr(train, "batch_gradient", recorded)
    return calls, launched


def test_compile_elsewhere_runs_eagerly_until_the_graphs_are_built(tmp_path, monkeypatch):
    """--compile: meta-steps run eagerly while another process compiles (here: still running at the polls of steps
    2 and 3), compiled from the step that finds it exited, recorded as such; θ is the eager run's to rounding."""
    calls, launched = _compile_elsewhere(monkeypatch, polls=2)
    compiled = meta_train(config(method="maml", meta_steps=5, compile=True), tmp_path / "c")
    assert calls == [False, False, False, True, True] and len(launched) == 1
    [record] = compiled["compiles"]
    assert (record["step"], record["compiled_from"], record["error"]) == (0, 3, None) and record["elsewhere_s"] > 0
    assert record["cache"] == {"loaded": 2, "compiled": 0}  # what the compiling process said it found
    eager = meta_train(config(method="maml", meta_steps=5), tmp_path / "e")
    assert all(torch.allclose(compiled["theta"][k], eager["theta"][k], rtol=1e-10, atol=1e-13) for k in eager["theta"])
    assert eager["compiles"] == []


def test_compile_wait_compiles_here_before_the_first_step(tmp_path, monkeypatch):
    calls, launched = _compile_elsewhere(monkeypatch, polls=2)
    trained = meta_train(config(method="maml", meta_steps=3, compile=True, compile_wait=True), tmp_path / "c")
    assert calls == [True, True, True] and launched == []
    [record] = trained["compiles"]
    cache = record.pop("cache")  # what inductor loaded or compiled here for the first step (0, 0: held in memory)
    assert record == {"step": 0, "elsewhere_s": None, "error": None, "compiled_from": 0}
    assert set(cache) == {"loaded", "compiled"} and min(cache.values()) >= 0


def test_a_failed_compiling_process_warns_and_the_run_compiles_here(tmp_path, monkeypatch):
    from amaml_lab.compiled import CompileFallbackWarning

    calls, _ = _compile_elsewhere(monkeypatch, polls=0, code=1)
    with pytest.warns(
        CompileFallbackWarning,
        match=r"the compiling process failed \(RuntimeError: boom in the"
        r" compiling process\); compiling here",
    ):
        trained = meta_train(config(method="maml", meta_steps=3, compile=True), tmp_path / "c")
    assert calls == [False, True, True]
    assert trained["compiles"][0]["error"] == "RuntimeError: boom in the compiling process"
    assert set(trained["compiles"][0]["cache"]) == {"loaded", "compiled"}  # this process compiled them itself


@pytest.mark.integration  # starts other processes
def test_the_compiling_process_fills_the_cache_and_cleans_up(tmp_path):
    """The real compiling process on a tiny run's first meta-batch: it exits 0 and removes its folder."""
    from amaml_lab.training import train
    from amaml_lab.training.builders import on_device

    cfg = config(method="maml", compile=True).resolved().check()
    domain = load_domain(cfg.domain, cfg.shots, cfg.query, tasks=cfg.tasks, pool=cfg.pool)
    model = build_model(cfg, getattr(domain, "in_features", None))
    support, query = domain.train_batch(torch.Generator().manual_seed(0), cfg.meta_batch, cfg.shots, cfg.query)
    proc = train._launch(cfg, model, dict(model.named_parameters()), on_device(support, cfg), on_device(query, cfg))
    folder = Path(proc.popen.args[-1]).parent
    assert proc.popen.wait(timeout=600) == 0, proc.failure()
    assert not folder.exists()
    cache = proc.cache()  # its own account of inductor's cache: graphs loaded or compiled, at least one
    assert set(cache) == {"loaded", "compiled"} and cache["loaded"] + cache["compiled"] >= 1
