"""The kit's meta-step written in JAX, for the side-by-side (``python -m amaml_lab.bench --jax``): the same MLP, the
same ½·MSE support and MSE query losses, the same flow du/dt = -grad L_S(u) - reg (u - theta) stepped by the same
3/8-rule rk4 (torchdiffeq's ``rk4``), the same theta and meta-batch; gradients compared with the kit's maml.

Four peers: ``jax-jit`` back-propagates through the loop (``jax.jit`` of ``jax.grad``, the steps a
``lax.fori_loop``); ``jax-jit-checkpoint`` the same with ``jax.checkpoint`` on each step (its stages recomputed in
the backward pass instead of kept: rematerialisation); ``diffrax`` solves the inner flow with ``diffeqsolve`` (the
same tableau, constant steps) and differentiates it with diffrax's default adjoint (recursive checkpointing), and
``diffrax-checkpoints`` with ``RecursiveCheckpointAdjoint(checkpoints=steps)``, every step's state kept.  JAX
and diffrax are the optional ``[jax]`` extra; :func:`available` says whether they are installed.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

PEERS = ("jax-jit", "jax-jit-checkpoint", "diffrax", "diffrax-checkpoints")
# one thread, as the kit runs: XLA reads this when JAX is first imported (set here, before that)
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("XLA_FLAGS", ONE_THREAD)


def available() -> str | None:
    """None when JAX and diffrax import; else what to install."""
    missing = [m for m in ("jax", "diffrax") if importlib.util.find_spec(m) is None]
    return None if not missing else f'{" and ".join(missing)} not installed (pip install -e ".[jax]")'


def _rk4(field, u, dt):
    """One step of torchdiffeq's rk4 (the 3/8 rule), its operations in its order."""
    third = 1.0 / 3.0
    k1 = field(u)
    k2 = field(u + dt * k1 * third)
    k3 = field(u + dt * (k2 - k1 * third))
    k4 = field(u + dt * (k1 - k2 + k3))
    return u + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


def gradient_fn(peer: str, theta: dict, *, steps: int, step_size: float, reg: float):
    """A jitted ``f(theta_flat, xs, ys, xq, yq) -> meta-gradient`` (flat, in ``theta``'s order) of the mean query
    loss over the tasks of a meta-batch (inputs (B, n, in), targets (B, n, out)), and ``theta`` flattened."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    names = list(theta)
    shapes = [np.shape(theta[k]) for k in names]
    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.concatenate([np.asarray(theta[k], dtype=np.float64).reshape(-1) for k in names])

    def forward(u, x):
        parts, i = [], 0
        for shape, size in zip(shapes, sizes):
            parts.append(u[i : i + size].reshape(shape))
            i += size
        h = x
        for j in range(0, len(parts), 2):  # Linear layers (weight (out, in), bias), tanh between them
            h = h @ parts[j].T + parts[j + 1]
            if j + 2 < len(parts):
                h = jnp.tanh(h)
        return h

    def support_loss(u, x, y):
        return 0.5 * jnp.mean((forward(u, x) - y) ** 2)

    def query_loss(u, x, y):
        return jnp.mean((forward(u, x) - y) ** 2)

    def adapted(th, x, y):
        def field(u):
            return -jax.grad(support_loss)(u, x, y) - reg * (u - th)

        if peer.startswith("jax-jit"):
            step = lambda u: _rk4(field, u, step_size)  # noqa: E731
            step = jax.checkpoint(step) if peer == "jax-jit-checkpoint" else step
            return jax.lax.fori_loop(0, steps, lambda _, u: step(u), th)
        every = steps if peer == "diffrax-checkpoints" else None
        return _diffrax_end(lambda t, u, args: field(u), th, steps, step_size, every)

    def meta_loss(th, xs, ys, xq, yq):
        ends = jax.vmap(adapted, in_axes=(None, 0, 0))(th, xs, ys)
        return jnp.mean(jax.vmap(query_loss)(ends, xq, yq))

    return jax.jit(jax.grad(meta_loss)), flat


def _diffrax_end(vector_field, y0, steps: int, step_size: float, checkpoints: int | None = None):
    import diffrax

    adjoint = diffrax.RecursiveCheckpointAdjoint(checkpoints=checkpoints)  # None: diffrax's default
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        _rk38(),
        t0=0.0,
        t1=steps * step_size,
        dt0=step_size,
        y0=y0,
        stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=steps + 1,
        adjoint=adjoint,
    )
    return sol.ys[-1]


def _rk38():
    """torchdiffeq's rk4 (the 3/8 rule) as a diffrax solver."""
    import diffrax

    class RK38(diffrax.AbstractERK):
        tableau = diffrax.ButcherTableau(
            c=np.array([1 / 3, 2 / 3, 1.0]),
            b_sol=np.array([1 / 8, 3 / 8, 3 / 8, 1 / 8]),
            b_error=np.zeros(4),
            a_lower=(np.array([1 / 3]), np.array([-1 / 3, 1.0]), np.array([1.0, -1.0, 1.0])),
        )
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    return RK38()


__all__ = ["ONE_THREAD", "PEERS", "available", "gradient_fn"]
