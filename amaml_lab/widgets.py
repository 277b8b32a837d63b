"""Widget apps for the notebooks: a plain class computes, ipywidgets controls only call it.

Each app holds ``controls`` (a dict of ipywidgets), ``figure`` (a plotly
``FigureWidget``) and ``status`` (an HTML line); changing a control's
``.value`` calls :meth:`App.update`, which recomputes through
:mod:`amaml_lab.explore` or :mod:`amaml_lab.measure` and writes the new data into
the figure's traces.  Nothing needs a running kernel, so the tests drive the
apps by setting values.  Show one in a notebook with ``display(app.widget)``.
"""
from __future__ import annotations

import json
import math

import ipywidgets as W
import torch

from . import explore, horizon_data, viz, viz_horizon
from .flow import FIXED_SOLVERS
from .metagrad import compare_methods


class App:
    """Controls, a figure and a status line; a change of any control's value calls :meth:`update`."""

    controls: dict
    figure: object

    def __init__(self):
        self.status = W.HTML()
        self.updates = 0
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, change) -> None:
        self.update()

    def update(self) -> None:
        self.status.value = "<i>computing…</i>"
        self.status.value = self.redraw()
        self.updates += 1

    def redraw(self) -> str:  # pragma: no cover - every app defines it
        raise NotImplementedError

    @property
    def widget(self):
        if getattr(self, "_box", None) is None:
            self._box = W.VBox([W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                                self.status, self.figure])
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


class FlowExplorer(App):
    """Notebook 01: gradient descent, a solver and the gradient flow on a 2-D loss surface."""

    def __init__(self, surface: str = "quadratic", horizon: float = 2.0, step_size: float = 0.1,
                 solver: str = "rk4", reg: float = 0.0, start: float | None = None):
        self._start_y = explore.surface(surface).start[1]
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
        self.paths = explore.inner_paths(**self._path_options())
        self.figure = viz.surface_figure(surface, self.paths, widget=True)
        super().__init__()
        self.status.value = self._describe()

    def _describe(self) -> str:
        s = explore.surface(self.controls["surface"].value)
        parts = []
        for name, pts in self.paths.items():
            start, end = float(s.loss(pts[0])), float(s.loss(pts[-1]))
            unstable = " <b>(loss rose: the step is unstable)</b>" if end > start else ""
            parts.append(f"{name}: ends at ({end_point(pts)}), loss {end:.4g}{unstable}")
        return " · ".join(parts)

    def _path_options(self) -> dict:
        """inner_paths' arguments: the start is (θ₁ from its slider, the surface's own θ₂)."""
        values = self.values()
        values["start"] = (values.pop("start"), self._start_y)
        return values

    def redraw(self) -> str:
        values = self._path_options()
        self.paths = explore.inner_paths(**values)
        viz.update_surface(self.figure, values["surface"], self.paths)
        return self._describe()


def end_point(pts) -> str:
    return f"{float(pts[-1, 0]):.3f}, {float(pts[-1, 1]):.3f}"


class CostExplorer(App):
    """Notebook 02: time and peak memory of maml and the adjoint, measured on this machine, against the steps.

    Every (steps, method) point is measured once, in the background, from the
    app's build on: by default all of them in one separate Python process
    (:func:`amaml_lab.measure.stream`, so a measurement never shares this
    kernel's memory), smallest steps first; ``measure(name, steps) -> {"time_s",
    "peak_mb"}`` replaces it (called in a background thread).  Points appear
    as they arrive and the status line says how many are still coming; a move
    of the slider only redraws what is there.  :meth:`wait` blocks until every
    point is in.
    """

    def __init__(self, steps_options=(10, 30, 100, 300, 1000), steps: int | None = None, measure=None,
                 methods=viz.COST_METHODS, device: str = "cpu", shots: int = 50, hidden: int = 32):
        import threading

        from .config import check_device

        self.device = check_device(device)
        self.methods = tuple(methods)
        self.rows: list[dict] = []
        self.error: str | None = None
        self.points = [(name, s) for s in sorted(steps_options) for name in self.methods]
        self.controls = {"steps": W.SelectionSlider(options=list(steps_options), value=steps or steps_options[0],
                                                    description="inner steps", **slider_layout())}
        self.figure = viz.cost_figure(self.rows, widget=True)
        self._lock = threading.RLock()  # the collecting thread and the controls both redraw
        super().__init__()
        self.status.value = self._describe(self.controls["steps"].value)
        cfgs = [dict(name=name, steps=s, shots=shots, hidden=hidden, step_size=0.01, solver="rk4", dtype="float64",
                     device=self.device, repeat=1, time_budget=30.0, seed=0) for name, s in self.points]
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
            viz.update_cost(self.figure, list(self.rows))
            return self._describe(self.controls["steps"].value)


class ReconstructionExplorer(App):
    """Notebook 03: the state rebuilt by running the flow backward, against the true one."""

    def __init__(self, lam_max: float = 10.0, horizon: float = 2.0, steps: int = 200, component: int | None = None):
        self.steps = steps
        self.controls = {
            "lam_max": W.FloatLogSlider(value=lam_max, base=10, min=0, max=1.8, step=0.05, description="λmax",
                                        readout_format=".1f", **slider_layout()),
            "horizon": W.FloatSlider(value=horizon, min=0.5, max=5.0, step=0.25, description="T", **slider_layout()),
        }
        self.result = self._compute()
        self.component = self._stiffest() if component is None else component
        self.figure = viz.reconstruction_figure(self.result, self.component, widget=True)
        super().__init__()
        self.status.value = self._describe()

    def _compute(self):
        task = explore.QuadraticTask(eig=(0.2, float(self.controls["lam_max"].value)))
        self.task = task
        return explore.reconstruction(task, float(self.controls["horizon"].value), self.steps)

    def _stiffest(self) -> int:
        # the coordinate that leans most on the stiffest eigenvector shows the blow-up best
        _, vecs = torch.linalg.eigh(self.task.A)
        return int(vecs[:, -1].abs().argmax())

    def _describe(self) -> str:
        lam, T = self.controls["lam_max"].value, self.controls["horizon"].value
        return f"λmax·T = {lam * T:.1f}, e^(λmax T) ≈ {math.exp(min(lam * T, 700)):.1e}; " \
               f"rebuilt u(0) off by {self.result['error']:.2e} (relative)"

    def redraw(self) -> str:
        self.result = self._compute()
        viz.update_reconstruction(self.figure, self.result, self.component)
        return self._describe()


class BaselineExplorer(App):
    """Notebook 04: every method against maml's meta-gradient as the steps grow; iMAML's λ and CG steps, truncation.

    A change recomputes only the methods it affects (λ and CG steps: iMAML;
    truncation: the truncated gradient; ``steps``: nothing, it picks the step
    count the status line reports and the dotted line marks).
    """

    def __init__(self, support_loss, query_loss, theta, steps_list=(5, 20, 50), step_size: float = 0.01,
                 lam: float = 2.0, cg_steps: int = 5, truncate: int = 5, steps: int | None = None):
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
        self._rows: dict = {}  # method -> its rows (one per steps)
        self._made_with: dict = {}  # method -> the options its rows were computed with
        self._refresh()
        self.figure = viz.baselines_figure(self.rows, widget=True, steps=self.controls["steps"].value)
        super().__init__()
        self.status.value = self._describe()

    def _methods(self):
        v = self.values()
        return explore.baseline_methods(v["lam"], v["cg_steps"], v["truncate"])

    def _refresh(self) -> None:
        stale = [m for m in self._methods() if self._made_with.get(m[1]) != m]
        if not stale:
            return
        rows = compare_methods(*self.task, self.steps_list, step_size=self.step_size, methods=stale)
        for label, method, options in stale:
            self._rows[method] = [r for r in rows if r["label"] == label]
            self._made_with[method] = (label, method, options)

    @property
    def rows(self) -> list[dict]:
        return [r for _, method, _ in self._methods() for r in self._rows[method]]

    def _describe(self) -> str:
        steps = self.controls["steps"].value
        rows = [r for r in self.rows if r["steps"] == steps]
        return f"at {steps} steps: " + " · ".join(f"{r['label']}: error {r['rel_error']:.2g}, cosine {r['cosine']:.4f}"
                                                  for r in rows)

    def redraw(self) -> str:
        self._refresh()
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
        return (f"T = {v['T']:.4g} · support loss {v['at_T'][0]:.3g}, query loss {v['at_T'][1]:.3g} · "
                f"error to the exact meta-gradient: " + ", ".join(parts) +
                f" · built in {self.data.seconds:.1f} s")

    def redraw(self) -> str:
        v = self.values()
        viz_horizon.update_horizon(self.figure, self.data, v["step_size"], v["solver"], self.data.steps.index(v["steps"]),
                           v["methods"])
        return self._describe()


def measured_costs() -> dict:
    """The time and memory measurements shipped with the package (``amaml_lab/measured/cpu-steps.json``)."""
    from importlib.resources import files

    return json.loads(files("amaml_lab").joinpath("measured", "cpu-steps.json").read_text())
