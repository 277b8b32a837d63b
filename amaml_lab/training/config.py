"""A run's settings, checked and resolved: :class:`RunConfig` and the defaults it fills in.

Regression domains default to the Adjoint MAML reference (the proximal flow with reg 1, rk4 steps of 0.01,
SGD 0.01, meta-batch 5, float64, 5,000 Adam fine-tuning iterations); Omniglot to MAML and iMAML's (Euler steps
of 0.1, no proximal term, Adam 1e-3, meta-batch 32, float32).  ``imaml`` uses its own proximal weight ``lam``
(2 by default) in place of ``reg``: :func:`inner_reg` is that rule, in one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

import torch

from ..checks import check_choice, check_device
from ..flow import FIXED_SOLVERS
from ..metagrad import METHODS
from ..metagrad.dispatch import proximal_weight
from ..tasks.domains import CLASSIFICATION, check_domain, default_hidden
from ..tasks.synthetic import FAMILIES

OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
TRAIN_METHODS = tuple(METHODS)  # comln adapts a classifier's head: Omniglot only
# what a field left at None becomes: the Adjoint MAML reference for regression; MAML / iMAML for Omniglot
DEFAULTS = {
    "regression": dict(
        step_size=0.01,
        reg=1.0,
        meta_lr=0.01,
        optimizer="sgd",
        meta_batch=5,
        dtype="float64",
        eval_tasks=100,
        eval_steps=5000,
    ),
    "classification": dict(
        step_size=0.1,
        reg=0.0,
        meta_lr=1e-3,
        optimizer="adam",
        meta_batch=32,
        dtype="float32",
        eval_tasks=600,
        eval_steps=0,
    ),
}
# fields that may change between a run and its --resume: they do not touch the meta-training arithmetic
RESUMABLE_CHANGES = (
    "meta_steps",
    "device",
    "eval_tasks",
    "eval_steps",
    "eval_every",
    "eval_lr",
    "eval_weight_decay",
    "checkpoint_every",
    "eval_interval",
    "deterministic",
    "test_horizons",
    "compile",
    "compile_wait",
    "interval_horizons",
    "keep_every",
)
# "kit": fresh episodes every meta-step, scaling fitted on meta-train tasks only (no meta-test leak);
# "reference": the Adjoint MAML code's pool of episodes drawn once per task and its scaling over all tasks
PROTOCOLS = ("kit", "reference")


def use_deterministic() -> None:
    """Deterministic kernels: a CUDA run (Omniglot's convolutions above all) then repeats, and resumes, bit for bit.

    On the CPU every kernel the kit uses is deterministic already.  On CUDA,
    cuDNN's convolution backward picks nondeterministic algorithms and
    convolutions and matrix products may use TF32; this turns both off
    (``torch.use_deterministic_algorithms``), at some cost in speed.
    """
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@dataclass
class RunConfig:
    """One meta-training run (the reference's settings by default)."""

    domain: str
    shots: int
    query: int
    inner_steps: int
    device: str = "cpu"
    method: str = "adjoint"
    meta_steps: int = 5000
    seed: int = 0
    step_size: float | None = None  # None: the domain's default (DEFAULTS)
    solver: str = "rk4"
    reg: float | None = None
    meta_batch: int | None = None
    meta_lr: float | None = None
    optimizer: str | None = None
    hidden: int | None = None  # None: 32 for synthetic domains, 40 for ratings, 64 filters for Omniglot
    dtype: str | None = None
    ways: int = 5  # Omniglot: classes per episode
    subset: str = "auto"  # Omniglot: "auto", "full", "small" or "demo" (generated glyphs)
    # Omniglot: meta-train characters held out of training (each with its rotations) for meta-validation episodes,
    # scored along training (evals.csv's val_accuracy) for a stopping rule; 0: none
    validation_characters: int = 0
    learn_horizon: bool = False  # comln: meta-learn T = inner_steps * step_size (through log T), as COMLN does
    tasks: int = 100
    pool: int = 1000
    bug_compatible: bool = False
    options: dict = field(default_factory=dict)  # the method's own (truncate, lam, cg_steps, checkpoints, ...)
    checkpoint_every: int = 100
    eval_tasks: int | None = None
    eval_steps: int | None = None
    eval_every: int = 10
    eval_lr: float = 1e-3
    eval_weight_decay: float = 1e-6
    eval_interval: int = 0  # meta-steps between evaluations during training (the reference: 100); 0: at the end only
    protocol: str = "kit"
    deterministic: bool = False  # CUDA: deterministic kernels and no TF32 (see use_deterministic)
    compile: bool = False  # meta-gradients through torch.compile graphs (amaml_lab.compiled; same numbers to rounding)
    # with compile: False, the graphs compile in another process while meta-steps run eagerly, then load here
    # from inductor's cache; True, here before the first meta-step, every step compiled (repeats bit for bit)
    compile_wait: bool = False
    # regression: also the error after N inner steps (the run's step size, solver and reg) for each N here,
    # columns adapt<N> of tasks.csv: the cross-evaluation of a theta trained at one horizon and tested at others
    test_horizons: tuple = ()
    # regression, with eval_interval: None, each evaluation along training is the full one (Adam fine-tuning and
    # the test horizons); a tuple, only theta, the own loop and adapt<N> for N here (evaluate.loop_evaluation)
    interval_horizons: tuple | None = None
    keep_every: int = 0  # > 0: theta and the outer optimiser's state kept every this many meta-steps (snapshots/)
    # True: each meta-step's gradient (the meta-batch's mean) is divided by its norm over all of theta before the
    # outer optimiser sees it, so no batch outweighs another and the optimiser's state cannot go stale with scale
    normalize_grad: bool = False

    @property
    def classification(self) -> bool:
        return self.domain in CLASSIFICATION

    def resolved(self) -> RunConfig:
        """A copy with every field left at None set to the domain's default."""
        check_domain(self.domain)
        defaults = DEFAULTS["classification" if self.classification else "regression"]
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.hidden is None:
            filled["hidden"] = default_hidden(self.domain)
        return replace(self, **filled)

    def check(self):
        check_domain(self.domain)
        check_choice("method", self.method, TRAIN_METHODS)
        if self.method == "comln" and not self.classification:
            raise ValueError(
                f"method='comln' adapts a classifier's linear head; domain={self.domain!r} is a"
                f" regression domain. Use it with {', '.join(CLASSIFICATION)}"
            )
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be True or False; got {self.deterministic!r}")
        if not isinstance(self.normalize_grad, bool):
            raise ValueError(f"normalize_grad must be True or False; got {self.normalize_grad!r}")
        if not isinstance(self.learn_horizon, bool):
            raise ValueError(f"learn_horizon must be True or False; got {self.learn_horizon!r}")
        if self.compile_wait not in (True, False) or (self.compile_wait and not self.compile):
            raise ValueError(
                f"compile_wait must be True (with compile=True) or False; got {self.compile_wait!r}"
                f" with compile={self.compile!r}"
            )
        if self.learn_horizon and self.method != "comln":
            raise ValueError("learn_horizon=True meta-learns COMLN's horizon; use it with method='comln'")
        unresolved = [k for k in (*DEFAULTS["regression"], "hidden") if getattr(self, k) is None]
        if unresolved:
            raise ValueError(f"{', '.join(unresolved)} left at None: call RunConfig.resolved() first")
        for name in (
            "shots",
            "query",
            "inner_steps",
            "meta_steps",
            "meta_batch",
            "tasks",
            "pool",
            "checkpoint_every",
            "eval_tasks",
            "eval_every",
            "ways",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        _check_horizons("test_horizons", self.test_horizons)
        if self.interval_horizons is not None:
            _check_horizons("interval_horizons", self.interval_horizons, "None or ")
        for name in ("eval_steps", "eval_interval", "keep_every", "validation_characters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        if self.validation_characters and not self.classification:
            raise ValueError(
                f"validation_characters holds out Omniglot's meta-train characters; domain={self.domain!r} has its"
                " own meta-validation functions (amaml-lab validate)"
            )
        check_choice("protocol", self.protocol, PROTOCOLS)
        if self.protocol == "reference" and self.domain not in FAMILIES:
            raise ValueError(
                f"protocol='reference' reproduces the reference code's synthetic data; domain="
                f"{self.domain!r} has only protocol='kit'. Use it with {', '.join(FAMILIES)}"
            )
        for name in ("step_size", "meta_lr", "eval_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number; got {value!r}")
        for name in ("reg", "eval_weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.solver not in FIXED_SOLVERS:
            raise ValueError(
                f"solver={self.solver!r} is not known; allowed values: {', '.join(FIXED_SOLVERS)}"
                " (a meta-batch shares one fixed grid)"
            )
        check_choice("dtype", self.dtype, DTYPES)
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1; got {self.hidden!r}")
        if self.classification and self.ways < 2:
            raise ValueError(f"ways must be an integer >= 2; got {self.ways!r}")
        allowed = METHODS[self.method].options
        for name in self.options:
            if name not in allowed:
                raise ValueError(
                    f"option {name}={self.options[name]!r} is not known to method={self.method!r};"
                    f" its options: {', '.join(allowed) or 'none'}"
                )
        check_device(self.device, self.dtype)
        return self

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed."""
        return {k: v for k, v in asdict(self).items() if k not in RESUMABLE_CHANGES}

    def differences(self, saved: dict, everything: bool = False) -> list[str]:
        """The identity fields in which a checkpoint's saved identity differs from this one; with
        ``everything``, every field, against a summary.json's config (compared as JSON reads them).

        A field the checkpoint does not name (it was added to the kit after the
        run started) counts as its default value, so older runs still resume.
        """
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        mine = self.identity()
        if everything:
            mine = json.loads(json.dumps(asdict(self)))
            defaults = json.loads(json.dumps(defaults))
        return sorted(k for k in mine if saved.get(k, defaults.get(k, MISSING)) != mine[k])


def _check_horizons(name: str, value, alternative: str = "") -> None:
    if not isinstance(value, (tuple, list)) or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in value
    ):
        raise ValueError(f"{name} must be {alternative}a tuple of integers >= 0; got {value!r}")


def inner_reg(cfg: RunConfig) -> float:
    """The proximal weight of the run's inner problem: imaml's own ``lam`` (2 unless given), else ``cfg.reg``."""
    return proximal_weight(cfg.method, cfg.reg, cfg.options)


def config_of(summary: dict) -> RunConfig:
    """The :class:`RunConfig` a summary.json records (fields added to the kit since count as their defaults)."""
    known = {f.name for f in fields(RunConfig)}
    saved = {k: v for k, v in summary["config"].items() if k in known}
    saved["test_horizons"] = tuple(saved.get("test_horizons", ()))
    if saved.get("interval_horizons") is not None:
        saved["interval_horizons"] = tuple(saved["interval_horizons"])
    return RunConfig(**saved)
