"""Widget apps for the notebooks: a plain class computes, ipywidgets controls only call it.

Each app holds ``controls`` (a dict of ipywidgets), ``figure`` (a plotly
``FigureWidget``) and ``status`` (an HTML line); changing a control's
``.value`` calls :meth:`App.update`, which recomputes through
:mod:`amaml_lab.explore` or :mod:`amaml_lab.bench` and writes the new data into
the figure's traces.  Nothing needs a running kernel, so the tests drive the
apps by setting values.  Show one in a notebook with ``display(app.widget)``.
"""
from __future__ import annotations

import math

import ipywidgets as W
import torch

from . import explore, viz
from .flow import FIXED_SOLVERS


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
        return W.VBox([W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")), self.status,
                       self.figure])


def _slider_layout():
    return dict(continuous_update=False, style={"description_width": "initial"})


class FlowExplorer(App):
    """Notebook 01: gradient descent, a solver and the gradient flow on a 2-D loss surface."""

    def __init__(self, surface: str = "quadratic", horizon: float = 2.0, step_size: float = 0.1,
                 solver: str = "rk4", reg: float = 0.0):
        self.controls = {
            "surface": W.Dropdown(options=list(explore.SURFACES), value=surface, description="surface"),
            "horizon": W.FloatSlider(value=horizon, min=0.2, max=6.0, step=0.2, description="T",
                                     **_slider_layout()),
            "step_size": W.FloatLogSlider(value=step_size, base=10, min=-2.5, max=-0.5, step=0.05,
                                          description="step size h", readout_format=".3f", **_slider_layout()),
            "solver": W.Dropdown(options=list(FIXED_SOLVERS), value=solver, description="solver"),
            "reg": W.FloatSlider(value=reg, min=0.0, max=3.0, step=0.1, description="reg", **_slider_layout()),
        }
        self.paths = explore.inner_paths(**self.values())
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

    def redraw(self) -> str:
        values = self.values()
        self.paths = explore.inner_paths(**values)
        viz.update_surface(self.figure, values["surface"], self.paths)
        return self._describe()


def end_point(pts) -> str:
    return f"{float(pts[-1, 0]):.3f}, {float(pts[-1, 1]):.3f}"


class CostExplorer(App):
    """Notebook 02: time and peak memory of maml and the adjoint, measured at the steps the slider picks.

    ``measure(name, steps) -> {"time_s", "peak_mb"}`` does the measuring; by
    default one fresh process per point (:func:`amaml_lab.bench` workers), so
    one measurement cannot inherit another's memory.
    """

    def __init__(self, steps_options=(10, 30, 100, 300, 1000), steps: int | None = None, measure=None,
                 methods=viz.COST_METHODS, device: str = "cpu"):
        from .train import check_device

        self.device = check_device(device)
        self.measure = measure or (lambda name, steps: bench_measure(name, steps, device=self.device))
        self.methods = tuple(methods)
        self.rows: list[dict] = []
        self.controls = {"steps": W.SelectionSlider(options=list(steps_options), value=steps or steps_options[0],
                                                    description="inner steps", **_slider_layout())}
        self._measure_at(self.controls["steps"].value)
        self.figure = viz.cost_figure(self.rows, widget=True)
        super().__init__()
        self.status.value = self._describe(self.controls["steps"].value)

    def _measure_at(self, steps: int) -> None:
        done = {(r["name"], r["steps"]) for r in self.rows}
        for name in self.methods:
            if (name, steps) not in done:
                self.rows.append({"name": name, "steps": steps, **self.measure(name, steps)})

    def _describe(self, steps: int) -> str:
        here = {r["name"]: r for r in self.rows if r["steps"] == steps}
        ref = here.get("maml")
        parts = []
        for name, r in here.items():
            ratio = f" ({r['peak_mb'] / ref['peak_mb']:.2g}× maml's memory)" if ref and ref["peak_mb"] > 0 else ""
            parts.append(f"{name}: {r['time_s']:.3f} s, {r['peak_mb']:.1f} MB{ratio}")
        return f"{steps} steps · " + " · ".join(parts)

    def redraw(self) -> str:
        steps = self.controls["steps"].value
        self._measure_at(steps)
        viz.update_cost(self.figure, self.rows)
        return self._describe(steps)


def bench_measure(name: str, steps: int, shots: int = 50, hidden: int = 32, device: str = "cpu",
                  dtype: str = "float64", in_process: bool = False) -> dict:
    """Time and peak memory of one meta-gradient (:mod:`amaml_lab.bench`'s task and method ``name``).

    ``in_process=False`` measures in a fresh Python process (clean memory
    baseline, about two seconds of start-up); True measures here.
    """
    from . import bench

    cfg = dict(name=name, steps=steps, shots=shots, hidden=hidden, step_size=0.01, solver="rk4", dtype=dtype,
               device=device, repeat=1, time_budget=30.0, seed=0)
    row = bench.measure(cfg) if in_process else bench._run_worker(cfg)
    if "error" in row:
        raise ValueError(f"measuring {name} at {steps} steps failed: {row['error']}")
    return row


class ReconstructionExplorer(App):
    """Notebook 03: the state rebuilt by running the flow backward, against the true one."""

    def __init__(self, lam_max: float = 10.0, horizon: float = 2.0, steps: int = 200, component: int | None = None):
        self.steps = steps
        self.controls = {
            "lam_max": W.FloatLogSlider(value=lam_max, base=10, min=0, max=1.8, step=0.05, description="λmax",
                                        readout_format=".1f", **_slider_layout()),
            "horizon": W.FloatSlider(value=horizon, min=0.5, max=5.0, step=0.25, description="T", **_slider_layout()),
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
    """Notebook 04: every method against maml's meta-gradient as the steps grow; iMAML's λ and CG steps, truncation."""

    def __init__(self, support_loss, query_loss, theta, steps_list=(5, 20, 50), step_size: float = 0.01,
                 lam: float = 2.0, cg_steps: int = 5, truncate: int = 5):
        self.task = (support_loss, query_loss, theta)
        self.steps_list, self.step_size = tuple(steps_list), step_size
        self.controls = {
            "lam": W.FloatLogSlider(value=lam, base=10, min=-1, max=2, step=0.1, description="iMAML λ",
                                    readout_format=".2f", **_slider_layout()),
            "cg_steps": W.IntSlider(value=cg_steps, min=1, max=20, description="CG steps", **_slider_layout()),
            "truncate": W.IntSlider(value=truncate, min=1, max=max(self.steps_list), description="truncation",
                                    **_slider_layout()),
        }
        self.rows = self._compute()
        self.figure = viz.baselines_figure(self.rows, widget=True)
        super().__init__()
        self.status.value = self._describe()

    def _compute(self):
        v = self.values()
        return explore.baseline_sweep(*self.task, self.steps_list, step_size=self.step_size, lam=v["lam"],
                                      cg_steps=v["cg_steps"], truncate=v["truncate"])

    def _describe(self) -> str:
        last = max(self.steps_list)
        rows = [r for r in self.rows if r["steps"] == last]
        return f"at {last} steps: " + " · ".join(f"{r['label']}: error {r['rel_error']:.2g}, cosine {r['cosine']:.4f}"
                                                 for r in rows)

    def redraw(self) -> str:
        self.rows = self._compute()
        viz.update_baselines(self.figure, self.rows)
        return self._describe()
