"""Exercises on meta-gradients and the inner problem: the meta-gradient through a whole loop (notebook 00), one
Euler step of the adjoint (02), iMAML's linear system (04) and where the proximal flow settles (05)."""

from __future__ import annotations

import torch

from ._judging import Exercise, as_answer, judge, random_spd

# ---------------------------------------------------------------- 00: the meta-gradient through a whole loop
_LOOP = {
    "stub": (
        "that is θ − c, the query loss's gradient at θ with no loop at all, which is what the notebook's stub "
        "returns: run the N steps, then carry u_N − c back through each of them."
    ),
    "first order": (
        "that is u_N − c, the query loss's gradient at u_N alone: FOMAML's direction, which drops the loop's "
        "Jacobian du_N/dθ = (I − hA)^N; carry the gradient back through it."
    ),
    "one factor": (
        "(I − hA)(u_N − c) carries the gradient back through one step only; each of the N steps multiplies by "
        "I − hA: du_N/dθ = (I − hA)^N."
    ),
    "one short": (
        "(I − hA)^(N−1): one step short; the loop starts at u_0 = θ and takes N steps, each a factor I − hA."
    ),
    "flow": (
        "expm(−A·h·N)(u_N − c) is the gradient flow's Jacobian, not the N Euler steps': they agree only as "
        "h → 0; differentiate the steps taken, (I − hA)^N."
    ),
    "ascent": "(I + hA)^N: each step u ← u − h(Au − b) descends, so it multiplies by I − hA, not I + hA.",
    "at θ": (
        "the Jacobian is right but the query gradient is taken at θ: the query loss is measured after the loop, "
        "so carry back u_N − c, not θ − c."
    ),
    "negated": "negated: your answer is the right one with the opposite sign; the query gradient is +(u_N − c).",
    "doubled": "doubled: your answer is twice the right one; ½‖u − c‖² has the gradient u − c, not 2(u − c).",
}
LOOP_CASES = ((0.1, 5), (0.05, 20), (0.02, 60))  # (h, N): every mistake above parts from the right answer in each


def loop_problem(case: int) -> dict:
    """The check's ``case``-th input (float64): theta, A (eigenvalues in [0.1, 5]), b, c, h and n."""
    gen = torch.Generator().manual_seed(100 + case)
    A = random_spd(4, gen)
    theta, b, c = (torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(3))
    h, n = LOOP_CASES[case]
    return {"theta": theta, "A": A, "b": b, "c": c, "h": h, "n": n}


def _check_loop_metagradient(meta_grad) -> tuple[bool, str]:
    results = []
    for case in range(len(LOOP_CASES)):
        p = loop_problem(case)
        A, h, n, eye = p["A"], p["h"], p["n"], torch.eye(4, dtype=torch.float64)
        u = p["theta"]
        for _ in range(n):
            u = u - h * (A @ u - p["b"])
        step, g = eye - h * A, u - p["c"]
        right = torch.linalg.matrix_power(step, n).T @ g
        refs = {
            "right": right,
            "h": h,
            "steps": n,
            "stub": p["theta"] - p["c"],
            "first order": g,
            "one factor": step @ g,
            "one short": torch.linalg.matrix_power(step, n - 1) @ g,
            "flow": torch.linalg.matrix_exp(-A * h * n) @ g,
            "ascent": torch.linalg.matrix_power(eye + h * A, n) @ g,
            "at θ": torch.linalg.matrix_power(step, n) @ (p["theta"] - p["c"]),
            "negated": -right,
            "doubled": 2 * right,
        }
        answer = meta_grad(*(v.clone() if torch.is_tensor(v) else v for v in p.values()))
        results.append((*as_answer(answer, 1e-9), refs))
    return judge(
        results,
        _LOOP,
        "((I − hA)^N)ᵀ (u_N − c): the chain rule through every step, what back-propagation (maml) and the discrete "
        "adjoint compute without forming the matrix",
        "at h = {h}, N = {steps} expected {expected}, got {got}: the meta-gradient is (du_N/dθ)ᵀ ∇L_Q(u_N).",
    )


def _solution_loop_metagradient():
    def meta_grad(theta, A, b, c, h, n):
        u = theta
        for _ in range(n):
            u = u - h * (A @ u - b)
        step = torch.eye(len(theta), dtype=theta.dtype) - h * A
        return torch.linalg.matrix_power(step, n).T @ (u - c)

    return meta_grad


# ---------------------------------------------------------------- 02: one Euler step of the adjoint
_EULER = {  # what a typical wrong step returns is named by one of these
    "stub": (
        "that leaves a unchanged, which is what the notebook's stub returns: fill in one Euler step, moving a "
        "by h times its time derivative."
    ),
    "forward": (
        "a + h·H·a runs the adjoint forward in time; going back from t to t − h, "
        "a(t − h) ≈ a(t) − h·da/dt = a(t) − h·H·a(t)."
    ),
    "no h": "the step size h is missing: an Euler step moves by h times the derivative.",
    "no H": "the Hessian is missing: the adjoint's derivative is H·a, not a.",
    "negated": (
        "negated: your answer is the right one with the opposite sign; check the sign of a(t) in it "
        "(the step starts from +a(t))."
    ),
    "doubled": (
        "doubled: your answer is twice the right one; a(t) enters once, so look for a term counted twice "
        "or a stray factor 2."
    ),
}


def _check_adjoint_euler_step(step) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(2)
    results = []
    for h in (0.01, 0.1, 0.3):
        a, H = torch.randn(5, generator=gen, dtype=torch.float64), random_spd(5, gen)
        right = a - h * H @ a
        refs = {
            "right": right,
            "h": h,
            "stub": a,
            "forward": a + h * H @ a,
            "no h": (a - H @ a, a + H @ a),
            "no H": (a - h * a, a + h * a),
            "negated": -right,
            "doubled": 2 * right,
        }
        results.append((*as_answer(step(a.clone(), H.clone(), h)), refs))
    return judge(
        results,
        _EULER,
        "a(t − h) = a(t) − h·H·a(t): the continuous adjoint's Euler step backward in time",
        "at h = {h} the answer is off by {off:.3g}: write the adjoint's time derivative at t, then step by h "
        "against the direction of time.",
    )


def _solution_adjoint_euler_step():
    def step(a, H, h):
        return a - h * H @ a

    return step


# ---------------------------------------------------------------- 04: iMAML's linear system by hand
_IMAML = {
    "stub": "v = g is what the notebook's stub returns: fill in the solve of (I + H/λ) v = g.",
    "λI + H": (
        "you solved (λI + H) v = g, whose v is the right one divided by λ: divide H by λ and keep I, (I + H/λ) v = g."
    ),
    "I + λH": "that solves (I + λH) v = g; the proximal weight divides the Hessian: (I + H/λ) v = g.",
    "product": "that multiplies g by (I + H/λ); iMAML needs its inverse applied to g (solve the system).",
    "no I": "the identity is missing: the implicit Jacobian of the proximal optimum is (I + H/λ)⁻¹.",
    "negated": (
        "negated: your v is the right one with the opposite sign; check the sign of g (the system's "
        "right-hand side is +g)."
    ),
    "doubled": "doubled: your v is twice the right one; look for a stray factor 2 in the system or in g.",
}


def _check_imaml_system(solve) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(4)
    results = []
    for lam in (0.5, 2.0, 20.0):
        H, g = random_spd(6, gen), torch.randn(6, generator=gen, dtype=torch.float64)
        eye = torch.eye(6, dtype=torch.float64)
        right = torch.linalg.solve(eye + H / lam, g)
        refs = {
            "right": right,
            "lam": lam,
            "stub": g,
            "λI + H": torch.linalg.solve(lam * eye + H, g),
            "I + λH": torch.linalg.solve(eye + lam * H, g),
            "product": (eye + H / lam) @ g,
            "no I": (torch.linalg.solve(H / lam, g), torch.linalg.solve(H, g)),
            "negated": -right,
            "doubled": 2 * right,
        }
        results.append((*as_answer(solve(H.clone(), g.clone(), lam), 1e-8), refs))
    return judge(
        results,
        _IMAML,
        "v = (I + H/λ)⁻¹ g: what conjugate gradient approaches, one HVP a step, without forming H",
        "at λ = {lam} the answer is {rel:.2g} away (relative).",
    )


def _solution_imaml_system():
    def solve(H, g, lam):
        return torch.linalg.solve(torch.eye(len(g), dtype=g.dtype) + H / lam, g)

    return solve


# ---------------------------------------------------------------- 05: where the proximal flow settles
_PROXIMAL = {
    "stub": (
        "that is zero, which is what the notebook's stub returns: fill in where the flow stops moving: "
        "set du/dt = 0 and solve for u."
    ),
    "no reg": (
        "that is the support loss's own minimum A⁻¹b, where the plain gradient flow ends; reg pulls u back toward "
        "θ, so the proximal flow settles where (A + reg·I)u = b + reg·θ."
    ),
    "θ": (
        "that is θ itself, where the flow starts; it moves until the support loss's pull −(Au − b) balances the "
        "proximal pull reg·(θ − u)."
    ),
    "no θ": (
        "θ is missing: the proximal pull reg·(θ − u) puts reg·θ on the right-hand side, (A + reg·I)u = b + reg·θ."
    ),
    "no reg·I": (
        "the curvature misses reg·I: the proximal term adds reg·u to the pull on u as well as reg·θ to the "
        "right-hand side, (A + reg·I)u = b + reg·θ."
    ),
    "sign": (
        "a sign error in the proximal term: −reg·(u − θ) pulls u toward θ, adding +reg·I to the curvature and "
        "+reg·θ to the right-hand side."
    ),
    "negated": (
        "negated: your answer is the right one with the opposite sign; check the sign of b (the pull is b − Au)."
    ),
}
PROXIMAL_REGS = (1.0, 0.3, 4.0)


def _check_proximal_limit(limit) -> tuple[bool, str]:
    gen = torch.Generator().manual_seed(5)
    results = []
    for reg in PROXIMAL_REGS:
        A, eye = random_spd(4, gen), torch.eye(4, dtype=torch.float64)
        theta, b = (torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(2))
        right = torch.linalg.solve(A + reg * eye, b + reg * theta)
        refs = {
            "right": right,
            "reg": reg,
            "stub": torch.zeros(4, dtype=torch.float64),
            "no reg": torch.linalg.solve(A, b),
            "θ": theta,
            "no θ": torch.linalg.solve(A + reg * eye, b),
            "no reg·I": torch.linalg.solve(A, b + reg * theta),
            "sign": tuple(
                torch.linalg.solve(A + s * reg * eye, b + t * reg * theta) for s, t in ((-1, -1), (-1, 1), (1, -1))
            ),
            "negated": -right,
        }
        results.append((*as_answer(limit(theta.clone(), A.clone(), b.clone(), reg), 1e-9), refs))
    return judge(
        results,
        _PROXIMAL,
        "u(∞) = (A + reg·I)⁻¹(b + reg·θ): between the support loss's minimum and θ, and approached at rate "
        "λmin + reg or faster, so with reg = 1 a long loop has settled early and further steps add little",
        "at reg = {reg:g} expected {expected}, got {got}: set du/dt = 0 and solve for u.",
    )


def _solution_proximal_limit():
    def limit(theta, A, b, reg):
        return torch.linalg.solve(A + reg * torch.eye(len(theta), dtype=theta.dtype), b + reg * theta)

    return limit


EXERCISES = (
    Exercise(
        "loop_metagradient",
        "00",
        "The support loss L_S(u) = ½uᵀAu − bᵀu (A symmetric positive definite) is trained by N Euler steps "
        "u ← u − h·(Au − b) from u_0 = θ, and the query loss is L_Q(u) = ½‖u − c‖². Write "
        "meta_grad(theta, A, b, c, h, n) returning dL_Q(u_N)/dθ, the meta-gradient through the whole loop "
        "(by the chain rule, or by back-propagating through the steps with torch.autograd).",
        _check_loop_metagradient,
        _solution_loop_metagradient,
    ),
    Exercise(
        "adjoint_euler_step",
        "02",
        "On a quadratic support loss the adjoint obeys da/dt = H·a, integrated backward from a(T) = ∇L_Q. "
        "Write step(a, H, h) returning a(t − h) after one Euler step from a(t).",
        _check_adjoint_euler_step,
        _solution_adjoint_euler_step,
    ),
    Exercise(
        "imaml_system",
        "04",
        "iMAML's meta-gradient is v with (I + H/λ) v = g, g = ∇L_Q at the inner solution. Write "
        "solve(H, g, lam) returning v for a dense Hessian H.",
        _check_imaml_system,
        _solution_imaml_system,
    ),
    Exercise(
        "proximal_limit",
        "05",
        "The proximal gradient flow du/dt = −(Au − b) − reg·(u − θ), u(0) = θ, runs on the support loss "
        "½uᵀAu − bᵀu (A symmetric positive definite). Write limit(theta, A, b, reg) returning u(∞), where it "
        "settles however long the loop.",
        _check_proximal_limit,
        _solution_proximal_limit,
    ),
)
