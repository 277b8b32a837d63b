"""The apps of notebooks 01 and 03: the inner loop on a 2-D surface, and the state rebuilt backward."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import ipywidgets as W
import torch

from .. import viz
from ..flow import FIXED_SOLVERS
from ..teach import backward as explore_backward
from ..teach import surfaces as explore
from .app import App, grid_index, slider_grid, slider_layout


class FlowExplorer(App):
    """Notebook 01: gradient descent, a solver and the gradient flow on a 2-D loss surface.

    The paths come from tables (:func:`amaml_lab.teach.surfaces.inner_path_batch` and
    :func:`~amaml_lab.teach.surfaces.flow_batch`: many loops stepped together, in numpy), every loop run to the end of
    the T slider with all three solvers, so that T and the solver only index them.  The build fills the tables for every
    position of each other control (surface, step size, reg, start) through the first state; a move to a state not in
    them (after moves of two different controls) computes the moved control's whole line of positions through it in one
    go, so that the next moves along it only index again.  The tables keep about :attr:`KEEP` numbers, the least
    recently used lines dropped first.  A value off a slider's grid (set from code) is computed alone.
    """

    AXES = ("surface", "step_size", "reg", "start")  # the controls a table's entry depends on (T and solver: not)
    KEEP = 8_000_000  # numbers the tables hold at most (about 64 MB)

    def __init__(
        self,
        surface: str = "quadratic",
        horizon: float = 2.0,
        step_size: float = 0.1,
        solver: str = "rk4",
        reg: float = 0.0,
        start: float | None = None,
    ):
        started = time.perf_counter()
        self.controls = {
            "surface": W.Dropdown(options=list(explore.SURFACES), value=surface, description="surface"),
            "horizon": W.FloatSlider(value=horizon, min=0.2, max=6.0, step=0.2, description="T", **slider_layout()),
            "step_size": W.FloatLogSlider(
                value=step_size,
                base=10,
                min=-2.5,
                max=-0.5,
                step=0.05,
                description="step size h",
                readout_format=".3f",
                **slider_layout(),
            ),
            "solver": W.Dropdown(options=list(FIXED_SOLVERS), value=solver, description="solver"),
            "reg": W.FloatSlider(value=reg, min=0.0, max=3.0, step=0.1, description="reg", **slider_layout()),
            "start": W.FloatSlider(
                value=explore.surface(surface).start[0] if start is None else start,
                min=-1.9,
                max=1.9,
                step=0.01,
                description="start θ₁",
                **slider_layout(),
            ),
        }
        self._fixed: OrderedDict = OrderedDict()  # (surface, h, reg, θ₁) -> {solver: states to the T slider's end}
        self._flows: OrderedDict = OrderedDict()  # (surface, reg, θ₁) -> the flow's states every FLOW_DT
        self._held = 0  # numbers in the tables
        self._grids: dict = {}
        for axis in self.AXES:
            self._fill(self._state(), axis)
        self.paths = self._lookup(self._state())
        self.figure = viz.surface_figure(surface, self.paths, widget=True)
        self._drawn_surface = surface
        super().__init__()
        self.status.value = self._describe()
        self.build_s = time.perf_counter() - started

    # ------------------------------------------------------------ the tables
    def _grid(self, name: str) -> list:
        if name not in self._grids:
            self._grids[name] = slider_grid(self.controls[name])
        return self._grids[name]

    def _snap(self, name: str):
        """A control's value: its grid position's value when on the grid (a browser's float may differ from the
        grid's in its last bits), else the value itself (set from code)."""
        c = self.controls[name]
        if not hasattr(c, "step"):
            return c.value
        i = grid_index(c, self._grid(name))
        return float(c.value) if i is None else self._grid(name)[i]

    def _state(self) -> dict:
        return {name: self._snap(name) for name in self.AXES}

    @staticmethod
    def _keys(v: dict) -> tuple:
        return (v["surface"], v["step_size"], v["reg"], v["start"]), (v["surface"], v["reg"], v["start"])

    def _start(self, v: dict) -> tuple:
        """The start: θ₁ from its slider, the surface's own θ₂."""
        return (v["start"], explore.surface(v["surface"]).start[1])

    def _fill(self, v: dict, axis: str | None) -> None:
        """Compute what the tables lack for every position of ``axis`` through the state ``v`` (``None``: for
        ``v`` alone), one vectorised solve a surface."""
        horizon = self.controls["horizon"].max
        states = [v] if axis is None else [{**v, axis: value} for value in self._grid(axis)]
        for name in dict.fromkeys(w["surface"] for w in states):
            mine = [w for w in states if w["surface"] == name]
            fixed = [
                w for w in dict((self._keys(w)[0], w) for w in mine).values() if self._keys(w)[0] not in self._fixed
            ]
            flows = [
                w for w in dict((self._keys(w)[1], w) for w in mine).values() if self._keys(w)[1] not in self._flows
            ]
            if fixed:
                rows = explore.inner_path_batch(
                    name,
                    [self._start(w) for w in fixed],
                    [w["step_size"] for w in fixed],
                    [w["reg"] for w in fixed],
                    horizon,
                )
                for w, row in zip(fixed, rows):
                    self._fixed[self._keys(w)[0]] = row
                    self._held += sum(a.size for a in row.values())
            if flows:
                # to the longest horizon a step size rounds T up to: T + half the largest step
                longest = horizon + max(self._grid("step_size") + [v["step_size"]]) / 2
                dense = explore.flow_batch(name, [self._start(w) for w in flows], [w["reg"] for w in flows], longest)
                for b, w in enumerate(flows):
                    self._flows[self._keys(w)[1]] = dense[:, b].copy()
                    self._held += dense[:, b].size
        self._forget()

    def _forget(self) -> None:
        """Drop the least recently used entries while the tables hold more than :attr:`KEEP` numbers."""
        while self._held > self.KEEP and len(self._fixed) > 1:
            _, row = self._fixed.popitem(last=False)
            self._held -= sum(a.size for a in row.values())
        while self._held > self.KEEP and len(self._flows) > 1:
            self._held -= self._flows.popitem(last=False)[1].size

    def _lookup(self, v: dict) -> dict:
        """The paths of state ``v`` at the T slider's value and the chosen solver, read off the tables."""
        fixed_key, flow_key = self._keys(v)
        self._fixed.move_to_end(fixed_key)
        self._flows.move_to_end(flow_key)
        return explore.paths_from_tables(
            v["surface"],
            self._fixed[fixed_key],
            self._flows[flow_key],
            self._start(v),
            v["reg"],
            v["step_size"],
            float(self.controls["horizon"].value),
            self.controls["solver"].value,
        )

    def _ensure(self, v: dict) -> None:
        fixed_key, flow_key = self._keys(v)
        if fixed_key in self._fixed and flow_key in self._flows:
            return
        moved = getattr(self, "moved", None)
        on_grid = moved in self.AXES and v[moved] in self._grid(moved)
        self._fill(v, moved if on_grid else None)

    # ------------------------------------------------------------ what is shown
    def _describe(self) -> str:
        s = explore.surface(self.controls["surface"].value)
        parts = []
        for name, pts in self.paths.items():
            start, end = (float(s.loss(torch.as_tensor(pts[i]))) for i in (0, -1))
            unstable = " <b>(loss rose: the step is unstable)</b>" if end > start else ""
            parts.append(f"{name}: ends at ({end_point(pts)}), loss {end:.4g}{unstable}")
        return " · ".join(parts)

    def redraw(self) -> str:
        v = self._state()
        self._ensure(v)
        self.paths = self._lookup(v)
        viz.update_surface(self.figure, v["surface"], self.paths, contours=v["surface"] != self._drawn_surface)
        self._drawn_surface = v["surface"]
        return self._describe()


def end_point(pts) -> str:
    return f"{float(pts[-1, 0]):.3f}, {float(pts[-1, 1]):.3f}"


class ReconstructionExplorer(App):
    """Notebook 03: the state rebuilt by running the flow backward, against the true one.

    Every (λmax, T) position of the two sliders is computed when the app is built, all loops stepped side by side
    (:func:`amaml_lab.teach.backward.reconstruction_grid`: :func:`~amaml_lab.teach.backward.reconstruction`'s numbers
    bit for bit); a move only indexes.  A value off a slider's grid (set from code) is computed alone, the same way.
    """

    def __init__(self, lam_max: float = 10.0, horizon: float = 2.0, steps: int = 200, component: int | None = None):
        started = time.perf_counter()
        self.steps = steps
        self.controls = {
            "lam_max": W.FloatLogSlider(
                value=lam_max,
                base=10,
                min=0,
                max=1.8,
                step=0.05,
                description="λmax",
                readout_format=".1f",
                **slider_layout(),
            ),
            "horizon": W.FloatSlider(value=horizon, min=0.5, max=5.0, step=0.25, description="T", **slider_layout()),
        }
        self._grids = {name: slider_grid(c) for name, c in self.controls.items()}
        self._table = explore_backward.reconstruction_grid(self._grids["lam_max"], self._grids["horizon"], steps)
        self._extra: dict = {}  # (λmax, T) off the grid -> its result
        self.result = self._compute()
        self.component = self._stiffest() if component is None else component
        self.figure = viz.reconstruction_figure(self.result, self.component, widget=True)
        super().__init__()
        self.status.value = self._describe()
        self.build_s = time.perf_counter() - started

    @property
    def task(self) -> explore.QuadraticTask:
        return explore.QuadraticTask(eig=(0.2, float(self.controls["lam_max"].value)))

    def _compute(self) -> dict:
        """The result at the sliders' values: indexed in the table, or computed alone off its grid."""
        lam, T = (float(self.controls[name].value) for name in ("lam_max", "horizon"))
        i, j = (grid_index(self.controls[name], self._grids[name]) for name in ("lam_max", "horizon"))
        table = self._table
        if i is None or j is None:
            if (lam, T) not in self._extra:
                self._extra[(lam, T)] = explore_backward.reconstruction_grid([lam], [T], self.steps)
            table, i, j = self._extra[(lam, T)], 0, 0
        return {
            "t": table["t"][j],
            "forward": table["forward"][:, i, j],
            "backward": table["backward"][:, i, j],
            "error": float(table["error"][i, j]),
        }

    def _stiffest(self) -> int:
        # the coordinate that leans most on the stiffest eigenvector shows the blow-up best
        _, vecs = torch.linalg.eigh(self.task.A)
        return int(vecs[:, -1].abs().argmax())

    def _describe(self) -> str:
        lam, T = self.controls["lam_max"].value, self.controls["horizon"].value
        return (
            f"λmax·T = {lam * T:.1f}, e^(λmax T) ≈ {math.exp(min(lam * T, 700)):.1e}; "
            f"rebuilt u(0) off by {self.result['error']:.2e} (relative: |u_back(0) − θ| / |θ|)"
        )

    def redraw(self) -> str:
        self.result = self._compute()
        viz.update_reconstruction(self.figure, self.result, self.component)
        return self._describe()
