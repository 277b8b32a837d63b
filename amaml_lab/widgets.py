"""Widget apps for the notebooks: a plain class computes, ipywidgets controls only call it.

Each app holds ``controls`` (a dict of ipywidgets), ``figure`` (a plotly
``FigureWidget``) and ``status`` (an HTML line); changing a control's
``.value`` calls :meth:`App.update`, which recomputes through
:mod:`amaml_lab.explore` or :mod:`amaml_lab.measure` and writes the new data into
the figure's traces.  Nothing needs a running kernel, so the tests drive the
apps by setting values.  Show one in a notebook with ``display(app.widget)``.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import time
import weakref
from collections import OrderedDict

import ipywidgets as W
import torch

from . import explore, horizon_data, viz, viz_horizon
from .flow import FIXED_SOLVERS


class App:
    """Controls, a figure and a status line; a change of any control's value calls :meth:`update`.

    Every app made in this process is in :attr:`live` by its :attr:`uid`, and its widget carries the CSS classes
    ``amaml-app`` and ``amaml-app-<uid>`` (the browser test finds an app's controls and figure by them);
    :attr:`timings` keeps the last moves' (control, wall-clock time the move reached the app, seconds in
    :meth:`update`).
    """

    controls: dict
    figure: object
    live: "weakref.WeakValueDictionary[int, App]" = weakref.WeakValueDictionary()
    _made = itertools.count(1)

    def __init__(self):
        self.status = W.HTML()
        self.updates = 0
        self.uid = next(App._made)
        self.timings: list[tuple[str, float, float]] = []
        App.live[self.uid] = self
        for name, control in self.controls.items():
            control.observe(functools.partial(self._on_change, name), names="value")

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, name, change) -> None:
        wall, started = time.time(), time.perf_counter()
        self.moved = name  # the control whose move this is (an app may compute ahead along it)
        try:
            self.update()
        finally:
            self.moved = None
        self.timings = self.timings[-199:] + [(name, wall, time.perf_counter() - started)]

    def update(self) -> None:
        self.status.value = self.redraw()
        self.updates += 1

    def redraw(self) -> str:  # pragma: no cover - every app defines it
        raise NotImplementedError

    @property
    def widget(self):
        if getattr(self, "_box", None) is None:
            self._box = W.VBox([W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                                self.status, self.figure])
            self._box.add_class("amaml-app")
            self._box.add_class(f"amaml-app-{self.uid}")
        return self._box

    def _ipython_display_(self):
        from IPython.display import display

        self._shown = display(self._repr_mimebundle_(), raw=True, display_id=True)

    def refresh_display(self) -> None:
        """Rewrite the output this app was displayed in, so that a saved notebook keeps the figure as it is now."""
        if getattr(self, "_shown", None) is not None:
            self._shown.update(self._repr_mimebundle_(), raw=True)

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, and beside it the figure as it is now as plain plotly JSON.

        JupyterLab shows the widget (its renderer ranks first); a saved or
        executed notebook read without a kernel (papermill's output, nbconvert,
        a static viewer) still finds the figure's data in the plotly entry.
        """
        import plotly.io as pio

        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        bundle["application/vnd.plotly.v1+json"] = json.loads(pio.to_json(self.figure, validate=False))
        return bundle


def slider_layout():
    return dict(continuous_update=False, style={"description_width": "initial"})


def slider_grid(control) -> list:
    """The value at every position of a slider (``base ** exponent`` for a log slider), rounded as a browser
    shows them; the options of any other control."""
    if not hasattr(control, "step"):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    at = [round(control.min + i * control.step, 10) for i in range(round((control.max - control.min) / control.step) + 1)]
    return [control.base ** e for e in at] if isinstance(control, W.FloatLogSlider) else at


def grid_index(control, grid: list) -> int | None:
    """The position of a slider's value in its :func:`slider_grid` (a browser's float may differ from the grid's
    in its last bits), or None off the grid."""
    log = isinstance(control, W.FloatLogSlider)
    value = control.value
    if log and not value > 0:
        return None
    at = math.log(value, control.base) if log else value
    i = round((at - control.min) / control.step)
    if 0 <= i < len(grid) and abs(at - (control.min + i * control.step)) <= 1e-6 * control.step:
        return i
    return None


class FlowExplorer(App):
    """Notebook 01: gradient descent, a solver and the gradient flow on a 2-D loss surface.

    The paths come from tables (:func:`amaml_lab.explore.inner_path_batch` and :func:`~amaml_lab.explore.flow_batch`:
    many loops stepped together, in numpy), every loop run to the end of the T slider with all three solvers, so
    that T and the solver only index them.  The build fills the tables for every position of each other control
    (surface, step size, reg, start) through the first state; a move to a state not in them (after moves of two
    different controls) computes the moved control's whole line of positions through it in one go, so that the
    next moves along it only index again.  The tables keep about :attr:`KEEP` numbers, the least recently used
    lines dropped first.  A value off a slider's grid (set from code) is computed alone.
    """

    AXES = ("surface", "step_size", "reg", "start")  # the controls a table's entry depends on (T and solver: not)
    KEEP = 8_000_000  # numbers the tables hold at most (about 64 MB)

    def __init__(self, surface: str = "quadratic", horizon: float = 2.0, step_size: float = 0.1,
                 solver: str = "rk4", reg: float = 0.0, start: float | None = None):
        started = time.perf_counter()
        self.controls = {
            "surface": W.Dropdown(options=list(explore.SURFACES), value=surface, description="surface"),
            "horizon": W.FloatSlider(value=horizon, min=0.2, max=6.0, step=0.2, description="T",
                                     **slider_layout()),
            "step_size": W.FloatLogSlider(value=step_size, base=10, min=-2.5, max=-0.5, step=0.05,
                                          description="step size h", readout_format=".3f", **slider_layout()),
            "solver": W.Dropdown(options=list(FIXED_SOLVERS), value=solver, description="solver"),
            "reg": W.FloatSlider(value=reg, min=0.0, max=3.0, step=0.1, description="reg", **slider_layout()),
            "start": W.FloatSlider(value=explore.surface(surface).start[0] if start is None else start, min=-1.9,
                                   max=1.9, step=0.01, description="start θ₁", **slider_layout()),
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
            fixed = [w for w in dict((self._keys(w)[0], w) for w in mine).values() if self._keys(w)[0] not in self._fixed]
            flows = [w for w in dict((self._keys(w)[1], w) for w in mine).values() if self._keys(w)[1] not in self._flows]
            if fixed:
                rows = explore.inner_path_batch(name, [self._start(w) for w in fixed], [w["step_size"] for w in fixed],
                                                [w["reg"] for w in fixed], horizon)
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
        return explore.paths_from_tables(v["surface"], self._fixed[fixed_key], self._flows[flow_key],
                                         self._start(v), v["reg"], v["step_size"],
                                         float(self.controls["horizon"].value), self.controls["solver"].value)

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


class CostExplorer(App):
    """Notebook 02: time and peak memory of maml and the adjoint, measured on this machine, against the steps.

    Every (steps, method) point is measured once, in the background, from the
    app's build on: by default all of them in one separate Python process
    (:func:`amaml_lab.measure.stream`, so a measurement never shares this
    kernel's memory), smallest steps first, each after a warm-up run of its own
    call and timed as the fastest of ``repeat`` runs (so the first point carries
    no first-call costs); ``measure(name, steps) -> {"time_s", "peak_mb"}``
    replaces it (called in a background thread).  Points appear as they arrive
    and the status line says how many are still coming; a move of the slider
    rings each method's point at its steps (what is measured) and says them.
    :meth:`wait` blocks until every point is in.
    """

    def __init__(self, steps_options=(10, 30, 100, 300, 1000), steps: int | None = None, measure=None,
                 methods=viz.COST_METHODS, device: str = "cpu", shots: int = 50, hidden: int = 32, repeat: int = 3):
        import threading

        from .config import check_device

        self.device = check_device(device)
        self.methods = tuple(methods)
        self.rows: list[dict] = []
        self.error: str | None = None
        self.points = [(name, s) for s in sorted(steps_options) for name in self.methods]
        self.controls = {"steps": W.SelectionSlider(options=list(steps_options), value=steps or steps_options[0],
                                                    description="inner steps", **slider_layout())}
        self.figure = viz.cost_figure(self.rows, widget=True, steps=self.controls["steps"].value)
        self._lock = threading.RLock()  # the collecting thread and the controls both redraw
        super().__init__()
        self.status.value = self._describe(self.controls["steps"].value)
        cfgs = [dict(name=name, steps=s, shots=shots, hidden=hidden, step_size=0.01, solver="rk4", dtype="float64",
                     device=self.device, repeat=repeat, time_budget=30.0, seed=0, warmup="full")
                for name, s in self.points]
        if measure is None:
            from .measure import stream

            source = stream(cfgs)
        else:
            source = ({**cfg, **measure(cfg["name"], cfg["steps"])} for cfg in cfgs)
        self._thread = threading.Thread(target=self._collect, args=(source,), daemon=True)
        self._thread.start()

    def _collect(self, source) -> None:
        try:
            for row in source:
                if "error" in row:
                    raise ValueError(f"measuring {row['name']} at {row['steps']} steps failed: {row['error']}")
                with self._lock:
                    self.rows.append({"name": row["name"], "steps": row["steps"], "time_s": row["time_s"],
                                      "peak_mb": row["peak_mb"]})
                self.update()
        except Exception as err:  # shown in the status line; the thread must not die silently
            self.error = str(err)
            self.update()

    def wait(self, timeout: float | None = None) -> "CostExplorer":
        """Block until every point is measured (or ``timeout`` seconds); raise if measuring failed."""
        self._thread.join(timeout)
        if self.error:
            raise RuntimeError(self.error)
        if not self._thread.is_alive():
            self.refresh_display()
        return self

    def _describe(self, steps: int) -> str:
        with self._lock:
            rows = list(self.rows)
        here = {r["name"]: r for r in rows if r["steps"] == steps}
        ref = here.get("maml")
        parts = []
        for name, r in here.items():
            ratio = (f" ({r['peak_mb'] / ref['peak_mb']:.2g}× maml's memory)"
                     if ref and ref["peak_mb"] > 0 and name != "maml" else "")
            parts.append(f"{name}: {r['time_s']:.3f} s, {r['peak_mb']:.1f} MB{ratio}")
        left = len(self.points) - len(rows)
        if self.error:
            tail = f" · <b>measuring stopped: {self.error}</b>"
        elif left:
            tail = f" · <i>measuring in the background, in a separate process: {left} of {len(self.points)} points to come</i>"
        else:
            tail = f" · all {len(self.points)} points measured"
        return f"{steps} steps · " + (" · ".join(parts) or "not measured yet") + tail

    def redraw(self) -> str:
        with self._lock:
            steps = self.controls["steps"].value
            viz.update_cost(self.figure, list(self.rows), steps=steps)
            return self._describe(steps)


class ReconstructionExplorer(App):
    """Notebook 03: the state rebuilt by running the flow backward, against the true one.

    Every (λmax, T) position of the two sliders is computed when the app is built, all loops stepped side by
    side (:func:`amaml_lab.explore.reconstruction_grid`: :func:`~amaml_lab.explore.reconstruction`'s numbers bit
    for bit); a move only indexes.  A value off a slider's grid (set from code) is computed alone, the same way.
    """

    def __init__(self, lam_max: float = 10.0, horizon: float = 2.0, steps: int = 200, component: int | None = None):
        started = time.perf_counter()
        self.steps = steps
        self.controls = {
            "lam_max": W.FloatLogSlider(value=lam_max, base=10, min=0, max=1.8, step=0.05, description="λmax",
                                        readout_format=".1f", **slider_layout()),
            "horizon": W.FloatSlider(value=horizon, min=0.5, max=5.0, step=0.25, description="T", **slider_layout()),
        }
        self._grids = {name: slider_grid(c) for name, c in self.controls.items()}
        self._table = explore.reconstruction_grid(self._grids["lam_max"], self._grids["horizon"], steps)
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
                self._extra[(lam, T)] = explore.reconstruction_grid([lam], [T], self.steps)
            table, i, j = self._extra[(lam, T)], 0, 0
        return {"t": table["t"][j], "forward": table["forward"][:, i, j], "backward": table["backward"][:, i, j],
                "error": float(table["error"][i, j])}

    def _stiffest(self) -> int:
        # the coordinate that leans most on the stiffest eigenvector shows the blow-up best
        _, vecs = torch.linalg.eigh(self.task.A)
        return int(vecs[:, -1].abs().argmax())

    def _describe(self) -> str:
        lam, T = self.controls["lam_max"].value, self.controls["horizon"].value
        return f"λmax·T = {lam * T:.1f}, e^(λmax T) ≈ {math.exp(min(lam * T, 700)):.1e}; " \
               f"rebuilt u(0) off by {self.result['error']:.2e} (relative: |u_back(0) − θ| / |θ|)"

    def redraw(self) -> str:
        self.result = self._compute()
        viz.update_reconstruction(self.figure, self.result, self.component)
        return self._describe()


class BaselineExplorer(App):
    """Notebook 04: every method against maml's meta-gradient as the steps grow; iMAML's λ and CG steps, truncation.

    Every row the controls can show is computed when the app is built (:func:`amaml_lab.explore.baseline_table`:
    iMAML at every λ position and CG steps 1..20, every truncation, each shared between settings); a move only
    indexes (λ and CG steps: the iMAML lines; truncation: the truncated ones; ``steps``: the status line and the
    dotted line).  A λ off the slider's grid (the one it starts at, or one set from code) is computed alone.
    """

    def __init__(self, support_loss, query_loss, theta, steps_list=(5, 20, 50), step_size: float = 0.01,
                 lam: float = 2.0, cg_steps: int = 5, truncate: int = 5, steps: int | None = None):
        started = time.perf_counter()
        self.task = (support_loss, query_loss, theta)
        self.steps_list, self.step_size = tuple(sorted(steps_list)), step_size
        self.controls = {
            "lam": W.FloatLogSlider(value=lam, base=10, min=-1, max=2, step=0.1, description="iMAML λ",
                                    readout_format=".2f", **slider_layout()),
            "cg_steps": W.IntSlider(value=cg_steps, min=1, max=20, description="CG steps", **slider_layout()),
            "truncate": W.IntSlider(value=truncate, min=1, max=max(self.steps_list), description="truncation",
                                    **slider_layout()),
            "steps": W.SelectionSlider(options=list(self.steps_list), value=steps or max(self.steps_list),
                                       description="inner steps", **slider_layout()),
        }
        self._lams = slider_grid(self.controls["lam"])
        lams = self._lams + ([] if grid_index(self.controls["lam"], self._lams) is not None else [float(lam)])
        self.table = explore.baseline_table(support_loss, query_loss, theta, self.steps_list, step_size=step_size,
                                            lams=lams, cg_steps=self.controls["cg_steps"].max,
                                            truncates=range(1, self.controls["truncate"].max + 1))
        self._fixed = {m: [r for r in self.table["fixed"] if r["method"] == m] for m in ("adjoint", "fomaml", "reptile")}
        self.figure = viz.baselines_figure(self.rows, widget=True, steps=self.controls["steps"].value)
        super().__init__()
        self.status.value = self._describe()
        self.build_s = time.perf_counter() - started

    def _lam(self) -> float:
        """λ as the table knows it: its grid position's value, or itself off the grid (computed now if new)."""
        c = self.controls["lam"]
        i = grid_index(c, self._lams)
        if i is not None:
            return float(self._lams[i])
        lam = float(c.value)
        if (lam, 1) not in self.table["imaml"]:
            self.table["imaml"].update(explore.imaml_rows(*self.task, self.steps_list, [lam],
                                                          self.controls["cg_steps"].max, step_size=self.step_size))
        return lam

    @property
    def rows(self) -> list[dict]:
        """The rows the figure shows now: adjoint, fomaml, reptile, iMAML at λ and CG steps, truncated at k."""
        v = self.values()
        return [*self._fixed["adjoint"], *self._fixed["fomaml"], *self._fixed["reptile"],
                *self.table["imaml"][(self._lam(), int(v["cg_steps"]))], *self.table["truncated"][int(v["truncate"])]]

    def _describe(self) -> str:
        steps = self.controls["steps"].value
        rows = [r for r in self.rows if r["steps"] == steps]
        return f"at {steps} steps: " + " · ".join(f"{r['label']}: error {r['rel_error']:.2g}, cosine {r['cosine']:.4f}"
                                                  for r in rows)

    def redraw(self) -> str:
        viz.update_baselines(self.figure, self.rows, steps=self.controls["steps"].value)
        return self._describe()


class HorizonExplorer(App):
    """Notebook 02: drag the inner loop's length and watch the adapted model, every meta-gradient and the cost.

    Everything is computed when the app is built (:func:`amaml_lab.horizon_data.compute`:
    one trajectory per step size and solver serves every horizon, each method
    carries every horizon at once, the work spread over processes); a move of
    any control only indexes what is stored.  ``cost`` is a dict with
    ``rows`` of :mod:`amaml_lab.measure` measurements (default: the ones shipped
    in ``amaml_lab/measured/cpu-steps.json``) drawn in panel (d).
    """

    def __init__(self, step_sizes=(0.01, 0.03), solvers=("euler", "midpoint", "rk4"), largest: int = 1000,
                 steps: int | None = None, step_size: float | None = None, solver: str = "rk4", methods=None,
                 data=None, cost: dict | None = None, workers: int | None = None, **task_options):
        from . import horizon

        self.data = data or horizon_data.compute(task_options, step_sizes=step_sizes, solvers=solvers,
                                            steps=horizon.log_steps(largest), workers=workers)
        self.cost = cost or measured_costs()
        d = self.data
        shown = list(horizon.LINES if methods is None else methods)
        for m in shown:
            if m not in horizon.LINES:
                raise ValueError(f"methods: {m!r} is not known; allowed values: {', '.join(horizon.LINES)}")
        if steps is None:  # 100 steps where the grid has them, else the middle of the grid
            steps = 100 if 100 in d.steps else d.steps[len(d.steps) // 2]
        if steps not in d.steps:
            raise ValueError(f"steps={steps!r} is not on the grid; allowed values: {', '.join(map(str, d.steps))}")
        step_size = d.step_sizes[0] if step_size is None else step_size
        if step_size not in d.step_sizes:
            raise ValueError(f"step_size={step_size!r} was not computed; allowed values: "
                             f"{', '.join(map(str, d.step_sizes))}")
        if solver not in d.solvers:
            raise ValueError(f"solver={solver!r} was not computed; allowed values: {', '.join(d.solvers)}")
        self.controls = {
            "steps": W.SelectionSlider(options=list(d.steps), value=steps, description="inner steps",
                                       **slider_layout()),
            "step_size": W.ToggleButtons(options=list(d.step_sizes), value=step_size, description="step size h",
                                         style={"button_width": "60px"}),
            "solver": W.ToggleButtons(options=list(d.solvers), value=solver, description="solver",
                                      style={"button_width": "80px"}),
            "methods": W.SelectMultiple(options=[(horizon.LABELS[m], m) for m in horizon.LINES], value=shown,
                                        description="methods", rows=len(horizon.LINES),
                                        layout=W.Layout(width="420px")),
        }
        self.figure = viz_horizon.horizon_figure(d, step_size, solver, d.steps.index(steps), shown, self.cost, widget=True)
        with self.figure.batch_update():
            self._hold_ranges()
        super().__init__()
        self.status.value = self._describe()

    def view(self) -> dict:
        """The data the figure shows now (see :func:`amaml_lab.viz_horizon.horizon_view`)."""
        v = self.values()
        return viz_horizon.horizon_view(self.data, v["step_size"], v["solver"], self.data.steps.index(v["steps"]),
                                v["methods"])

    def _describe(self) -> str:
        v = self.view()
        parts = []
        for m in v["methods"]:
            if m["shown"]:
                rel = m["rel_at"]
                text = "overflow" if not math.isfinite(rel) else f"{rel:.1e}"
                parts.append(f"{m['key']} {text}")
        h, solver = self.controls["step_size"].value, self.controls["solver"].value
        return (f"T = {v['T']:.4g}: {round(v['T'] / h)} {solver} steps of {h:g} · "
                f"support loss {v['at_T'][0]:.3g}, query loss {v['at_T'][1]:.3g} · "
                f"error to the exact meta-gradient: " + ", ".join(parts) +
                f" · built in {self.data.seconds:.1f} s")

    def _hold_ranges(self) -> None:
        """Fix every range a move of the steps, the step size or the solver could change to one that holds all of
        them: (a)'s y (the task, its points, the model at every T of every step size and solver), (b)'s t and
        losses, (c)'s T and (d)'s steps (every step count, every measured one).  Such a move then redraws only
        its traces (:func:`amaml_lab.viz.traces_only`), and the panels keep their scales from one to the next."""
        d = self.data

        def span(values, log: bool, pad: float):
            v = torch.as_tensor(values, dtype=torch.float64).flatten()
            v = v[torch.isfinite(v) & (v > 0)] if log else v[torch.isfinite(v)]
            v = v.log10() if log else v
            low, high = float(v.min()), float(v.max())
            pad = pad if log else pad * (high - low or 1.0)
            return [low - pad, high + pad]

        fig = self.figure
        fig.update_yaxes(range=span(torch.cat([c.flatten() for c in d.curves.values()] + [
            d.task.y_plot.flatten(), d.task.support[1].flatten(), d.task.query[1].flatten()]), False, 0.05), row=1, col=1)
        horizons = [k * h for k in d.steps for h in d.step_sizes]
        fig.update_xaxes(range=span(horizons + list(d.step_sizes), True, 0.05), row=1, col=2)
        fig.update_yaxes(range=span(torch.cat([torch.cat([sw.support_curve, sw.query_curve]).flatten()
                                               for sw in d.sweeps.values()]), True, 0.1), row=1, col=2)
        fig.update_xaxes(range=span(horizons, True, 0.05), row=2)
        fig.update_xaxes(range=span(list(d.steps) + [r["steps"] for r in self.cost["rows"]], True, 0.1), row=3)

    def redraw(self) -> str:
        v = self.values()
        j = self.data.steps.index(v["steps"])
        # steps, step size, solver: data moves inside the held ranges, the traces alone are drawn again; methods:
        # visibility changes, a full redraw
        batch = viz.traces_only if self.moved in ("steps", "step_size", "solver") else lambda f: f.batch_update()
        with batch(self.figure):
            viz_horizon.update_horizon(self.figure, self.data, v["step_size"], v["solver"], j, v["methods"])
        return self._describe()


def measured_costs() -> dict:
    """The time and memory measurements shipped with the package (``amaml_lab/measured/cpu-steps.json``)."""
    from importlib.resources import files

    return json.loads(files("amaml_lab").joinpath("measured", "cpu-steps.json").read_text())
