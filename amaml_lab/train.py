"""Meta-training with checkpoints that make a resumed run identical to an uninterrupted one.

A checkpoint holds theta, the outer optimiser's state, the episode generator's
state and the meta-step count; it is written atomically (write, then rename)
every ``checkpoint_every`` meta-steps, so a kill loses at most the steps since
the last one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .io import save_torch_atomic
from .metagrad import meta_gradient_batch
from .models import mlp
from .tasks.synthetic import family, make_split

OPTIMIZERS = ("sgd", "adam")


@dataclass
class RunConfig:
    """One meta-training run on a synthetic domain (the reference's settings by default)."""

    domain: str
    shots: int
    query: int
    inner_steps: int
    device: str = "cpu"
    method: str = "adjoint"
    meta_steps: int = 5000
    seed: int = 0
    step_size: float = 0.01
    solver: str = "rk4"
    reg: float = 1.0
    meta_batch: int = 5
    meta_lr: float = 0.01
    optimizer: str = "sgd"
    hidden: int = 32
    tasks: int = 100
    pool: int = 1000
    checkpoint_every: int = 100

    def check(self):
        family(self.domain)
        for name in ("shots", "query", "inner_steps", "meta_steps", "meta_batch", "tasks", "pool", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not known; allowed values: {', '.join(OPTIMIZERS)}")
        return self


def _loss(model):
    def loss(params, data):
        x, y = data
        return torch.mean((torch.func.functional_call(model, params, (x,)) - y) ** 2)

    return loss


def meta_train(cfg: RunConfig, out: Path, resume: bool = False) -> dict:
    """Run (or continue) meta-training to ``cfg.meta_steps``; returns {"theta", "meta_steps", "losses"}."""
    cfg.check()
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    split = make_split(cfg.domain, tasks=cfg.tasks, pool=cfg.pool)
    fam = family(cfg.domain)
    model = mlp(fam.dim, (cfg.hidden, cfg.hidden), 1, seed=cfg.seed)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
    optimizer = opt_cls(theta.values(), lr=cfg.meta_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, losses = 0, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        if state["config"] != {k: v for k, v in asdict(cfg).items() if k != "meta_steps"}:
            raise ValueError(f"{ckpt_path} was made with another configuration; use a fresh --out or the same settings")
        with torch.no_grad():
            for k, v in state["theta"].items():
                theta[k].copy_(v)
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, losses = state["meta_steps"], state["losses"]
    loss = _loss(model)
    while step < cfg.meta_steps:
        picks = torch.randint(0, split.tasks, (cfg.meta_batch,), generator=gen)
        sx, sy, qx, qy = [], [], [], []
        for t in picks.tolist():
            s_idx = torch.randperm(cfg.pool, generator=gen)[:cfg.shots]
            q_idx = torch.randperm(cfg.pool, generator=gen)[:cfg.query]
            sx.append(split.support_x[t, s_idx])
            sy.append(split.support_y[t, s_idx])
            qx.append(split.query_x[t, q_idx])
            qy.append(split.query_y[t, q_idx])
        r = meta_gradient_batch(loss, loss, {k: v.detach() for k, v in theta.items()},
                                (torch.stack(sx), torch.stack(sy)), (torch.stack(qx), torch.stack(qy)),
                                method=cfg.method, steps=cfg.inner_steps, step_size=cfg.step_size,
                                solver=cfg.solver, reg=cfg.reg)
        if not all(torch.isfinite(g).all() for g in r.grad.values()) or not torch.isfinite(torch.tensor(r.query_loss)):
            raise FloatingPointError(f"meta-step {step + 1} diverged (non-finite loss or gradient); try a smaller"
                                     f" --step-size than {cfg.step_size}. The last good checkpoint is kept.")
        optimizer.zero_grad()
        for k, v in theta.items():
            v.grad = r.grad[k].clone()
        optimizer.step()
        step += 1
        losses.append(r.query_loss)
        if step % cfg.checkpoint_every == 0 or step == cfg.meta_steps:
            config = {k: v for k, v in asdict(cfg).items() if k != "meta_steps"}
            save_torch_atomic({"config": config, "theta": {k: v.detach().clone() for k, v in theta.items()},
                               "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                               "meta_steps": step, "losses": losses}, ckpt_path)
    return {"theta": {k: v.detach() for k, v in theta.items()}, "meta_steps": step, "losses": losses}
