"""The libraries people use instead, side by side with the kit on the benchmark's task.

Every row computes d L_Q(u(T)) / d theta for the same task (an Alpine2D function of the Adjoint MAML paper,
standardised, 100 support and 100 query points, a tanh MLP 2-32-32-1, float64, inner step 0.01) and is compared with the
exact gradient of the loop it differentiates:

* unrolled SGD (the Euler steps of the gradient flow): ``higher``'s ``innerloop_ctx``, TorchOpt's
  ``MetaSGD`` and the kit's ``maml`` with ``solver="euler"``; exact: the kit's ``maml`` (euler);
* rk4 steps: back-propagation through torchdiffeq's ``odeint``, torchdiffeq's ``odeint_adjoint`` (the state
  rebuilt backward in time), the kit's ``maml``, stored ``adjoint`` and ``adjoint`` with at most 32 states, each
  with the continuous and the grid scheme; exact: the kit's ``maml`` (rk4), i.e. the discrete loop's gradient;
* iMAML's implicit gradient (I + H/λ)⁻¹ ∇L_Q at the proximal flow's end point: TorchOpt's ``custom_root``
  with its CG solver and the kit's ``imaml``, both with the same CG steps; exact: a dense solve.

The peers are an optional extra (``pip install -e ".[peers]"``); a missing one is reported, not an error.
"""

from __future__ import annotations

import importlib.util

import torch

from ..functional import flat_grad, load_forward_ad

LAM, CG_STEPS = 2.0, 5

# name -> (the package it needs, the loop it differentiates, what it is)
ROWS = {
    "kit maml (euler)": (None, "euler", "back-propagation through SGD steps"),
    "higher (unrolled SGD)": ("higher", "euler", "higher.innerloop_ctx with torch.optim.SGD"),
    "TorchOpt (MetaSGD)": ("torchopt", "euler", "torchopt.MetaSGD"),
    "kit maml (rk4)": (None, "rk4", "back-propagation through rk4 steps"),
    "torchdiffeq odeint (rk4)": ("torchdiffeq", "rk4", "back-propagation through torchdiffeq.odeint"),
    "kit adjoint (rk4, stored)": (None, "rk4", "A-MAML, every state stored"),
    "kit adjoint (rk4, 32 states)": (None, "rk4", "A-MAML, at most 32 states (binomial checkpointing)"),
    "kit adjoint (rk4, stored, grid)": (None, "rk4", "A-MAML, every state stored, scheme='grid'"),
    "kit adjoint (rk4, 32 states, grid)": (None, "rk4", "A-MAML, at most 32 states, scheme='grid'"),
    "torchdiffeq odeint_adjoint (rk4)": ("torchdiffeq", "rk4", "the state rebuilt backward with the adjoint"),
    "kit imaml (CG 5)": (None, "imaml", "CG on (I + H/λ) v = ∇L_Q"),
    "TorchOpt implicit (custom_root, CG 5)": ("torchopt", "imaml", "torchopt.diff.implicit.custom_root, solve_cg"),
}


def available(name: str) -> bool:
    package = ROWS[name][0]
    return package is None or importlib.util.find_spec(package) is not None


def peer_task(shots: int, hidden: int, seed: int, family: str = "Alpine2D"):
    """One task of a synthetic ``family`` (targets standardised by the support set's mean and std) and the MLP.

    On Alpine2D rebuilding the state backward is still right at T = 1 and off
    by orders of magnitude at T = 3: the curvature the paper's tasks have.
    """
    from ..functional import ParamSpec, flat_loss, module_params, task_losses
    from ..models import mlp
    from ..tasks.synthetic import FAMILIES, family_task

    fam = FAMILIES[family]
    support, query, _ = family_task(family, shots, shots, seed)
    mean, std = support[1].mean(), support[1].std()  # standardised targets, as the paper's evaluation has them
    support, query = (support[0], (support[1] - mean) / std), (query[0], (query[1] - mean) / std)
    model = mlp(fam.dim, (hidden, hidden), 1, dtype=torch.float64, seed=seed)
    support_loss, query_loss = task_losses(model, support, query)
    theta = module_params(model)
    spec = ParamSpec.of(theta)
    return dict(
        support_loss=support_loss,
        query_loss=query_loss,
        theta=theta,
        spec=spec,
        model=model,
        support=support,
        query=query,
        flat_support=flat_loss(support_loss, spec, "support_loss"),
        flat_query=flat_loss(query_loss, spec, "query_loss"),
        theta_flat=spec.flatten(theta).detach(),
    )


def _mse(out, y):
    return ((out - y) ** 2).mean()


# the kit's rows: meta_gradient's method and options
KIT_ROWS = {
    "kit maml (euler)": dict(method="maml", solver="euler"),
    "kit maml (rk4)": dict(method="maml"),
    "kit adjoint (rk4, stored)": dict(method="adjoint"),
    "kit adjoint (rk4, 32 states)": dict(method="adjoint", checkpoints=32),
    "kit adjoint (rk4, stored, grid)": dict(method="adjoint", scheme="grid"),
    "kit adjoint (rk4, 32 states, grid)": dict(method="adjoint", scheme="grid", checkpoints=32),
    "kit imaml (CG 5)": dict(method="imaml", lam=LAM, cg_steps=CG_STEPS),
}


def gradient_fn(name: str, task: dict, steps: int, step_size: float):
    """A function of no arguments computing row ``name``'s meta-gradient (flat): what is timed."""
    from .. import meta_gradient

    if name in KIT_ROWS:
        sl, ql, theta = task["support_loss"], task["query_loss"], task["theta"]
        return lambda: flat_grad(meta_gradient(sl, ql, theta, steps=steps, step_size=step_size, **KIT_ROWS[name]).grad)
    builders = {
        "higher (unrolled SGD)": _higher_fn,
        "TorchOpt (MetaSGD)": _torchopt_fn,
        "torchdiffeq odeint (rk4)": _odeint_fn,
        "torchdiffeq odeint_adjoint (rk4)": _odeint_fn,
        "TorchOpt implicit (custom_root, CG 5)": _implicit_fn,
    }
    if name not in builders:
        raise ValueError(f"row {name!r} is not known; allowed values: {', '.join(ROWS)}")
    return builders[name](name, task, steps, step_size)


def _higher_fn(name, task, steps, step_size):
    import higher

    model, (xs, ys), (xq, yq) = task["model"], task["support"], task["query"]

    def run():
        opt = torch.optim.SGD(model.parameters(), lr=step_size)
        with higher.innerloop_ctx(model, opt, copy_initial_weights=False, track_higher_grads=True) as (f, diff):
            for _ in range(steps):
                diff.step(_mse(f(xs), ys))
            return flat_grad(torch.autograd.grad(_mse(f(xq), yq), list(model.parameters())))

    return run


def _torchopt_fn(name, task, steps, step_size):
    import torchopt

    model, (xs, ys), (xq, yq) = task["model"], task["support"], task["query"]

    def run():
        params = list(model.parameters())
        state = torchopt.extract_state_dict(model)
        opt = torchopt.MetaSGD(model, lr=step_size)
        for _ in range(steps):
            opt.step(_mse(model(xs), ys))
        grad = flat_grad(torch.autograd.grad(_mse(model(xq), yq), params))
        torchopt.recover_state_dict(model, state)
        return grad

    return run


def _odeint_fn(name, task, steps, step_size):
    import torchdiffeq

    fs, fq, th = task["flat_support"], task["flat_query"], task["theta_flat"]

    class Field(torch.nn.Module):
        def forward(self, t, u):
            with torch.enable_grad():
                x = u if u.requires_grad else u.requires_grad_(True)
                return -torch.autograd.grad(fs(x), x, create_graph=True)[0]

    # output at 0 and T only, as one asks for u(T): odeint_adjoint then keeps no intermediate state and
    # rebuilds them backward (asked for every state, it resets to them and back-solves nothing)
    ends = torch.tensor([0.0, steps * step_size], dtype=th.dtype)
    options = {
        "grid_constructor": lambda func, y0, t: torch.linspace(float(t[0]), float(t[-1]), steps + 1, dtype=th.dtype)
    }
    adjoint = name.endswith("odeint_adjoint (rk4)")

    def run():
        u0 = th.clone().requires_grad_(True)
        if adjoint:
            uT = torchdiffeq.odeint_adjoint(
                Field(), u0, ends, method="rk4", options=options, adjoint_options=options, adjoint_params=()
            )[-1]
        else:
            uT = torchdiffeq.odeint(Field(), u0, ends, method="rk4", options=options)[-1]
        return torch.autograd.grad(fq(uT), u0)[0]

    return run


def _implicit_fn(name, task, steps, step_size):
    import torchopt

    fs, fq, th = task["flat_support"], task["flat_query"], task["theta_flat"]
    grad_fs = torch.func.grad(fs)  # TorchOpt differentiates the optimality condition with torch.func

    def optimality(u, theta_):  # the proximal inner problem's stationarity: grad L_S(u) + lam (u - theta) = 0
        return grad_fs(u) + LAM * (u - theta_)

    @torchopt.diff.implicit.custom_root(optimality, argnums=1, solve=torchopt.linear_solve.solve_cg(maxiter=CG_STEPS))
    def inner(u_init, theta_):
        return _proximal_end(task, steps, step_size)

    def run():
        theta_ = th.clone().requires_grad_(True)
        uT = inner(th.clone(), theta_)
        return torch.autograd.grad(fq(uT), theta_)[0]

    return run


def _proximal_end(task: dict, steps: int, step_size: float) -> torch.Tensor:
    """u(T) of the proximal flow (reg = λ) by the kit's rk4 steps: the iMAML rows' inner solution."""
    from ..flow import trajectory

    return trajectory(task["flat_support"], task["theta_flat"], steps=steps, step_size=step_size, reg=LAM)[1][-1]


def exact(name: str, task: dict, steps: int, step_size: float) -> torch.Tensor:
    """The exact gradient of the loop row ``name`` differentiates (see the module's docstring)."""
    loop = ROWS[name][1]
    if loop == "euler":
        return gradient_fn("kit maml (euler)", task, steps, step_size)()
    if loop == "rk4":
        return gradient_fn("kit maml (rk4)", task, steps, step_size)()
    u = _proximal_end(task, steps, step_size).requires_grad_(True)
    load_forward_ad()  # torch.func.hessian is forward-over-reverse: without PyTorch's torch.jit.script warning
    H = torch.func.hessian(task["flat_support"])(u.detach())
    g = torch.autograd.grad(task["flat_query"](u), u)[0]
    return torch.linalg.solve(torch.eye(len(g), dtype=g.dtype) + H / LAM, g)


def curvature(task: dict, steps: int, step_size: float) -> tuple[float, float]:
    """λmax of the support Hessian at θ and at u(T) after ``steps`` rk4 steps (dense eigenvalues: a small model's).

    The rk4 steps are stable for h·λmax < 2.78, the grid scheme's classical rk4 over 2h for h·λmax < 1.39.
    """
    from ..flow import trajectory

    u_T = trajectory(task["flat_support"], task["theta_flat"], steps=steps, step_size=step_size)[1][-1]
    load_forward_ad()
    hessian = torch.func.hessian(task["flat_support"])
    return tuple(float(torch.linalg.eigvalsh(hessian(u))[-1]) for u in (task["theta_flat"], u_T))


FLOW_REFINE = 4


def flow_reference(task: dict, steps: int, step_size: float) -> torch.Tensor:
    """The gradient flow's own meta-gradient at T = steps * step_size, for the rk4 rows' second error column.

    The kit's continuous adjoint on a grid ``FLOW_REFINE`` (4) times finer: its error falls like the fourth
    power of the step, 256 times below the rows' own (tested against ``maml`` on a 16 times finer grid).
    """
    from .. import meta_gradient

    fine = steps * FLOW_REFINE
    return flat_grad(
        meta_gradient(
            task["support_loss"],
            task["query_loss"],
            task["theta"],
            method="adjoint",
            steps=fine,
            step_size=step_size / FLOW_REFINE,
        ).grad
    )
