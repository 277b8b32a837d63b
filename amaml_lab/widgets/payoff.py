"""Notebook 08's app: choose the training horizon and the test horizon, see that theta adapt."""

from __future__ import annotations

import ipywidgets as W

from ..studies.payoff import agreement
from ..teach.payoff import adaptation_view
from ..viz import payoff as viz_payoff
from .app import App, slider_layout


class PayoffExplorer(App):
    """theta meta-trained through N inner steps, adapted with N_test steps on a few meta-test tasks, beside the
    cross-evaluation cell with its paired difference to theta trained at N = 10, seed by seed.

    Every (N, N_test) is computed when the app is built (:func:`amaml_lab.teach.payoff.adaptation_view`: one
    inner-loop solve per trained theta saves every test horizon); a move only indexes.
    """

    def __init__(
        self,
        records,
        setting: str,
        reg: float = 0.0,
        seed: int = 0,
        tasks=(0, 1, 2),
        train: int | None = None,
        test: int | None = None,
        view: dict | None = None,
    ):
        self.view = view or adaptation_view(records, setting, reg, seed=seed, tasks=tasks)
        v = self.view
        # by default the shortest-trained theta with a long test loop: moving "trained N" right shows the payoff
        train = v["train"][0] if train is None else train
        test = (1000 if 1000 in v["test"] else v["test"][-1]) if test is None else test
        for name, value, allowed in (("train", train, v["train"]), ("test", test, v["test"])):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not computed; allowed values: {', '.join(map(str, allowed))}")
        self.controls = {
            "train": W.SelectionSlider(options=v["train"], value=train, description="trained N", **slider_layout()),
            "test": W.SelectionSlider(options=v["test"], value=test, description="test N", **slider_layout()),
        }
        self.figure = viz_payoff.payoff_figure(v, *self.indices(), widget=True)
        super().__init__()
        self.status.value = self.describe()

    def indices(self) -> tuple[int, int]:
        values = self.values()
        return self.view["train"].index(values["train"]), self.view["test"].index(values["test"])

    def cell(self) -> dict:
        """The chosen cross-evaluation cell: mean of the seeds, their range, and the paired differences to N = 10."""
        n, m = self.values()["train"], self.values()["test"]
        cross = self.view["cross"]
        i, j = cross["train"].index(n), cross["test"].index(m)
        return {
            "train": n,
            "test": m,
            "mean": cross["mean"][i][j],
            "low": cross["low"][i][j],
            "high": cross["high"][i][j],
            "seeds": cross["seeds"][i],
            "pairs": self.view["pairs"].get((n, m), {}),
        }

    def describe(self) -> str:
        c = self.cell()
        tasks = self.view["evaluated"]
        text = (
            f"θ trained through N = {c['train']} (T = {c['train'] * self.view['step_size']:g}), adapted for"
            f" {c['test']} steps: nRMSE {c['mean']:.3f} over {tasks} meta-test tasks"
        )
        if c["seeds"] > 1:
            text += f" (seeds {c['low']:.3f}–{c['high']:.3f})"
        if c["pairs"]:
            diffs = ", ".join(f"{p['difference']:+.3f} ± {p['ci95']:.3f}" for _, p in sorted(c["pairs"].items()))
            text += (
                f" · minus θ trained at N = 10, paired per seed: {diffs} ({agreement(c['pairs'])} in every seed)"
                if agreement(c["pairs"]) != "unresolved"
                else f" · minus θ trained at N = 10, paired per seed: {diffs} (not resolved in every seed)"
            )
        return text

    def redraw(self) -> str:
        viz_payoff.update_payoff(self.figure, self.view, *self.indices())
        return self.describe()
