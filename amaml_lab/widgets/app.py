"""The apps' common part: :class:`App` (controls, a figure, a status line; a move calls :meth:`App.update`) and
the sliders' grids."""

from __future__ import annotations

import functools
import itertools
import json
import math
import time
import weakref

import ipywidgets as W


class App:
    """Controls, a figure and a status line; a change of any control's value calls :meth:`update`.

    Every app made in this process is in :attr:`live` by its :attr:`uid`, and its widget carries the CSS classes
    ``amaml-app`` and ``amaml-app-<uid>`` (the browser test finds an app's controls and figure by them);
    :attr:`timings` keeps the last moves' (control, wall-clock time the move reached the app, seconds in
    :meth:`update`).
    """

    controls: dict
    figure: object
    live: weakref.WeakValueDictionary[int, App] = weakref.WeakValueDictionary()
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
            self._box = W.VBox(
                [W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")), self.status, self.figure]
            )
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
    at = [
        round(control.min + i * control.step, 10) for i in range(round((control.max - control.min) / control.step) + 1)
    ]
    return [control.base**e for e in at] if isinstance(control, W.FloatLogSlider) else at


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
