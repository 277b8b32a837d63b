"""The apps of notebooks 02 and 04: every meta-gradient across the horizons, their measured cost, the baselines."""

from __future__ import annotations

import json
import math
import time

import ipywidgets as W
import torch

from .. import viz
from ..teach import baselines as explore_baselines
from ..teach import horizons_data as horizon_data
from ..viz import horizons as viz_horizon
from ..viz import style as viz_style
from .app import App, grid_index, slider_grid, slider_layout


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

    def __init__(
        self,
        steps_options=(10, 30, 100, 300, 1000),
        steps: int | None = None,
        measure=None,
        methods=viz.COST_METHODS,
        device: str = "cpu",
        shots: int = 50,
        hidden: int = 32,
        repeat: int = 3,
    ):
        import threading

        from ..checks import check_device

        self.device = check_device(device)
        self.methods = tuple(methods)
        self.rows: list[dict] = []
        self.error: str | None = None
        self.points = [(name, s) for s in sorted(steps_options) for name in self.methods]
        self.controls = {
            "steps": W.SelectionSlider(
                options=list(steps_options),
                value=steps or steps_options[0],
                description="inner steps",
                **slider_layout(),
            )
        }
        self.figure = viz.cost_figure(self.rows, widget=True, steps=self.controls["steps"].value)
        self._lock = threading.RLock()  # the collecting thread and the controls both redraw
        super().__init__()
        self.status.value = self._describe(self.controls["steps"].value)
        cfgs = [
            dict(
                name=name,
                steps=s,
                shots=shots,
                hidden=hidden,
                step_size=0.01,
                solver="rk4",
                dtype="float64",
                device=self.device,
                repeat=repeat,
                time_budget=30.0,
                seed=0,
                warmup="full",
            )
            for name, s in self.points
        ]
        if measure is None:
            from ..measure import stream

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
                    self.rows.append(
                        {"name": row["name"], "steps": row["steps"], "time_s": row["time_s"], "peak_mb": row["peak_mb"]}
                    )
                self.update()
        except Exception as err:  # shown in the status line; the thread must not die silently
            self.error = str(err)
            self.update()

    def wait(self, timeout: float | None = None) -> CostExplorer:
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
            ratio = (
                f" ({r['peak_mb'] / ref['peak_mb']:.2g}× maml's memory)"
                if ref and ref["peak_mb"] > 0 and name != "maml"
                else ""
            )
            parts.append(f"{name}: {r['time_s']:.3f} s, {r['peak_mb']:.1f} MB{ratio}")
        left = len(self.points) - len(rows)
        if self.error:
            tail = f" · <b>measuring stopped: {self.error}</b>"
        elif left:
            tail = (
                f" · <i>measuring in the background, in a separate process: {left} of {len(self.points)}"
                " points to come</i>"
            )
        else:
            tail = f" · all {len(self.points)} points measured"
        return f"{steps} steps · " + (" · ".join(parts) or "not measured yet") + tail

    def redraw(self) -> str:
        with self._lock:
            steps = self.controls["steps"].value
            viz.update_cost(self.figure, list(self.rows), steps=steps)
            return self._describe(steps)


class BaselineExplorer(App):
    """Notebook 04: every method against maml's meta-gradient as the steps grow; iMAML's λ and CG steps, truncation.

    Every row the controls can show is computed when the app is built (:func:`amaml_lab.teach.baselines.baseline_table`:
    iMAML at every λ position and CG steps 1..20, every truncation, each shared between settings); a move only
    indexes (λ and CG steps: the iMAML lines; truncation: the truncated ones; ``steps``: the status line and the
    dotted line).  A λ off the slider's grid (the one it starts at, or one set from code) is computed alone.
    """

    def __init__(
        self,
        support_loss,
        query_loss,
        theta,
        steps_list=(5, 20, 50),
        step_size: float = 0.01,
        lam: float = 2.0,
        cg_steps: int = 5,
        truncate: int = 5,
        steps: int | None = None,
    ):
        started = time.perf_counter()
        self.task = (support_loss, query_loss, theta)
        self.steps_list, self.step_size = tuple(sorted(steps_list)), step_size
        self.controls = {
            "lam": W.FloatLogSlider(
                value=lam,
                base=10,
                min=-1,
                max=2,
                step=0.1,
                description="iMAML λ",
                readout_format=".2f",
                **slider_layout(),
            ),
            "cg_steps": W.IntSlider(value=cg_steps, min=1, max=20, description="CG steps", **slider_layout()),
            "truncate": W.IntSlider(
                value=truncate, min=1, max=max(self.steps_list), description="truncation", **slider_layout()
            ),
            "steps": W.SelectionSlider(
                options=list(self.steps_list),
                value=steps or max(self.steps_list),
                description="inner steps",
                **slider_layout(),
            ),
        }
        self.lams = slider_grid(self.controls["lam"])  # the λ slider's grid: every iMAML λ the table holds
        lams = self.lams + ([] if grid_index(self.controls["lam"], self.lams) is not None else [float(lam)])
        self.table = explore_baselines.baseline_table(
            support_loss,
            query_loss,
            theta,
            self.steps_list,
            step_size=step_size,
            lams=lams,
            cg_steps=self.controls["cg_steps"].max,
            truncates=range(1, self.controls["truncate"].max + 1),
        )
        self.figure = viz.baselines_figure(self.rows, widget=True, steps=self.controls["steps"].value)
        super().__init__()
        self.status.value = self._describe()
        self.build_s = time.perf_counter() - started

    def _lam(self) -> float:
        """λ as the table knows it: its grid position's value, or itself off the grid (computed now if new)."""
        c = self.controls["lam"]
        i = grid_index(c, self.lams)
        if i is not None:
            return float(self.lams[i])
        lam = float(c.value)
        if (lam, 1) not in self.table["imaml"]:
            self.table["imaml"].update(
                explore_baselines.imaml_rows(
                    *self.task, self.steps_list, [lam], self.controls["cg_steps"].max, step_size=self.step_size
                )
            )
        return lam

    @property
    def rows(self) -> list[dict]:
        """The rows the figure shows now: adjoint, fomaml, reptile, iMAML at λ and CG steps, truncated at k."""
        v = self.values()
        return explore_baselines.rows_at(self.table, self._lam(), v["cg_steps"], v["truncate"])

    def _describe(self) -> str:
        steps = self.controls["steps"].value
        rows = [r for r in self.rows if r["steps"] == steps]
        return f"at {steps} steps: " + " · ".join(
            f"{r['label']}: error {r['rel_error']:.2g}, cosine {r['cosine']:.4f}" for r in rows
        )

    def redraw(self) -> str:
        viz.update_baselines(self.figure, self.rows, steps=self.controls["steps"].value)
        return self._describe()


class HorizonExplorer(App):
    """Notebook 02: drag the inner loop's length and watch the adapted model, every meta-gradient and the cost.

    Everything is computed when the app is built (:func:`amaml_lab.teach.horizons_data.compute`:
    one trajectory per step size and solver serves every horizon, each method
    carries every horizon at once, the work spread over processes), or, for the
    default settings, loaded as shipped with the package (:func:`amaml_lab.teach.horizons_data.build`);
    a move of any control only indexes what is stored.  ``cost`` is a dict with
    ``rows`` of :mod:`amaml_lab.measure` measurements (default: the ones shipped
    in ``amaml_lab/measured/cpu-steps.json``) drawn in panel (d).
    """

    def __init__(
        self,
        step_sizes=(0.01, 0.03),
        solvers=("euler", "midpoint", "rk4"),
        largest: int = 1000,
        steps: int | None = None,
        step_size: float | None = None,
        solver: str = "rk4",
        methods=None,
        data=None,
        cost: dict | None = None,
        workers: int | None = None,
        **task_options,
    ):
        from ..teach import horizons as horizon

        self.data = data or horizon_data.build(
            task_options, step_sizes=step_sizes, solvers=solvers, steps=horizon.log_steps(largest), workers=workers
        )
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
            raise ValueError(
                f"step_size={step_size!r} was not computed; allowed values: {', '.join(map(str, d.step_sizes))}"
            )
        if solver not in d.solvers:
            raise ValueError(f"solver={solver!r} was not computed; allowed values: {', '.join(d.solvers)}")
        self.controls = {
            "steps": W.SelectionSlider(
                options=list(d.steps), value=steps, description="inner steps", **slider_layout()
            ),
            "step_size": W.ToggleButtons(
                options=list(d.step_sizes), value=step_size, description="step size h", style={"button_width": "60px"}
            ),
            "solver": W.ToggleButtons(
                options=list(d.solvers), value=solver, description="solver", style={"button_width": "80px"}
            ),
            "methods": W.SelectMultiple(
                options=[(horizon.LABELS[m], m) for m in horizon.LINES],
                value=shown,
                description="methods",
                rows=len(horizon.LINES),
                layout=W.Layout(width="420px"),
            ),
        }
        self.figure = viz_horizon.horizon_figure(
            d, step_size, solver, d.steps.index(steps), shown, self.cost, widget=True
        )
        with self.figure.batch_update():
            self._hold_ranges()
        super().__init__()
        self.status.value = self._describe()

    def view(self) -> dict:
        """The data the figure shows now (see :func:`amaml_lab.viz.horizons.horizon_view`)."""
        v = self.values()
        return viz_horizon.horizon_view(
            self.data, v["step_size"], v["solver"], self.data.steps.index(v["steps"]), v["methods"]
        )

    def _describe(self) -> str:
        v = self.view()
        parts = []
        for m in v["methods"]:
            if m["shown"]:
                rel = m["rel_at"]
                text = "overflow" if not math.isfinite(rel) else f"{rel:.1e}"
                parts.append(f"{m['key']} {text}")
        h, solver = self.controls["step_size"].value, self.controls["solver"].value
        return (
            f"T = {v['T']:.4g}: {round(v['T'] / h)} {solver} steps of {h:g} · "
            f"support loss {v['at_T'][0]:.3g}, query loss {v['at_T'][1]:.3g} · "
            f"error to the exact meta-gradient: " + ", ".join(parts) + f" · built in {self.data.seconds:.1f} s"
        )

    def _hold_ranges(self) -> None:
        """Fix every range a move of the steps, the step size or the solver could change to one that holds all of
        them: (a)'s y (the task, its points, the model at every T of every step size and solver), (b)'s t and
        losses, (c)'s T and (d)'s steps (every step count, every measured one).  Such a move then redraws only
        its traces (:func:`amaml_lab.viz.style.traces_only`), and the panels keep their scales from one to the next."""
        d = self.data

        def span(values, log: bool, pad: float):
            v = torch.as_tensor(values, dtype=torch.float64).flatten()
            v = v[torch.isfinite(v) & (v > 0)] if log else v[torch.isfinite(v)]
            v = v.log10() if log else v
            low, high = float(v.min()), float(v.max())
            pad = pad if log else pad * (high - low or 1.0)
            return [low - pad, high + pad]

        fig = self.figure
        fig.update_yaxes(
            range=span(
                torch.cat(
                    [c.flatten() for c in d.curves.values()]
                    + [d.task.y_plot.flatten(), d.task.support[1].flatten(), d.task.query[1].flatten()]
                ),
                False,
                0.05,
            ),
            row=1,
            col=1,
        )
        horizons = [k * h for k in d.steps for h in d.step_sizes]
        fig.update_xaxes(range=span(horizons + list(d.step_sizes), True, 0.05), row=1, col=2)
        fig.update_yaxes(
            range=span(
                torch.cat([torch.cat([sw.support_curve, sw.query_curve]).flatten() for sw in d.sweeps.values()]),
                True,
                0.1,
            ),
            row=1,
            col=2,
        )
        fig.update_xaxes(range=span(horizons, True, 0.05), row=2)
        fig.update_xaxes(range=span(list(d.steps) + [r["steps"] for r in self.cost["rows"]], True, 0.1), row=3)

    def redraw(self) -> str:
        v = self.values()
        j = self.data.steps.index(v["steps"])
        # steps, step size, solver: data moves inside the held ranges, the traces alone are drawn again; methods:
        # visibility changes, a full redraw
        batch = viz_style.traces_only if self.moved in ("steps", "step_size", "solver") else lambda f: f.batch_update()
        with batch(self.figure):
            viz_horizon.update_horizon(self.figure, self.data, v["step_size"], v["solver"], j, v["methods"])
        return self._describe()


def measured_costs() -> dict:
    """The time and memory measurements shipped with the package (``amaml_lab/measured/cpu-steps.json``)."""
    from importlib.resources import files

    return json.loads(files("amaml_lab").joinpath("measured", "cpu-steps.json").read_text())
