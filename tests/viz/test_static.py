"""The kernel-free explorers (amaml_lab.viz.static): every state the app can show is in the figure, and it is the
state the app draws; the buttons and sliders point at it.  (tests/integration/test_book.py drags them in a browser.)"""

import math

import pytest
import torch

from amaml_lab import widgets
from amaml_lab.teach import horizons as horizon
from amaml_lab.teach import horizons_data as horizon_data
from amaml_lab.viz import static as viz_static


@pytest.fixture(scope="module")
def app():
    data = horizon_data.compute(
        dict(shots=6, queries=8, hidden=(8,), seed=1),
        step_sizes=(0.02, 0.05),
        solvers=("euler", "rk4"),
        steps=horizon.log_steps(30),
        workers=1,
    )
    return widgets.HorizonExplorer(data=data, steps=10, step_size=0.02, solver="rk4")


def near(a, b) -> bool:
    """Lists equal to the static figure's significant digits (None for a gap)."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(
        (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-300))
        for x, y in zip(a, b)
    )


def test_every_frame_is_the_apps_state(app):
    """For each (step size, solver) and each inner-steps position, the frame's data for that set is what the app
    draws there: the model at u(T), the markers at T, the line at the steps."""
    d = app.data
    fig = viz_static.horizon_static_figure(d, app.cost, step_size=0.02, solver="rk4", steps=10)
    combos = [(h, s) for h in d.step_sizes for s in d.solvers]
    assert [f.name for f in fig.frames] == [str(k) for k in d.steps]
    assert fig.layout.sliders[0].active == d.steps.index(10)
    assert fig.layout.sliders[0].steps[0].args[1]["frame"]["redraw"] is False  # data inside fixed axes
    every = torch.cat([c.flatten() for c in d.curves.values()])  # (a)'s axis holds every state's model
    assert fig.layout.yaxis.range[0] < float(every.min()) and fig.layout.yaxis.range[1] > float(every.max())
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == [f"h {h:g} · {s}" for h, s in combos]
    names = [t.name for t in app.figure.data]
    per_set = (len(fig.frames[0].data) - 2) // len(combos)  # two "steps now" lines at the end
    for c, (h, s) in enumerate(combos):
        for j, k in enumerate(d.steps):
            app.controls["step_size"].value, app.controls["solver"].value = h, s
            app.controls["steps"].value = k
            frame = fig.frames[j].data[c * per_set : (c + 1) * per_set]
            shown = app.figure.data
            assert near(frame[0].y, shown[names.index("model at u(T)")].y), (h, s, k)
            assert frame[0].name is None  # the legend stays: frames move data only, with no full redraw
            at_t = shown[7]  # (b)'s markers, as update_horizon writes them
            assert near(frame[1].x, at_t.x) and near(frame[1].y, at_t.y)
            rel_markers = shown[8 + len(horizon.LINES)]
            assert near([f.y[0] for f in frame[2 : 2 + len(horizon.LINES)]], rel_markers.y)
            assert list(fig.frames[j].data[-1].x) == [k] * 2  # (d): the line at the steps
    app.controls["step_size"].value, app.controls["solver"].value, app.controls["steps"].value = 0.02, "rk4", 10


def rendered(fig, frame) -> list:
    """The figure's traces after the browser applies ``frame`` (each of its data to the trace its index names)."""
    data = [t.to_plotly_json() for t in fig.data]
    for i, change in zip(frame.traces, frame.data):
        data[i] = {**data[i], **{k: v for k, v in change.to_plotly_json().items() if k != "type"}}
    return data


def test_each_frame_applied_to_its_traces_draws_the_apps_state(app):
    """Not only each frame's data but where it lands: after a frame is applied, each set's "at T" markers sit at
    the app's (T, value) and every method's line keeps its whole curve (an update sent one trace off would move a
    line onto one point and leave the markers where they were)."""
    d = app.data
    fig = viz_static.horizon_static_figure(d, app.cost, step_size=0.02, solver="rk4", steps=10)
    sets = [[i for i, v in zip(b.args[1], b.args[0]["visible"]) if v] for b in fig.layout.updatemenus[0].buttons]
    combos = [(h, s) for h in d.step_sizes for s in d.solvers]
    n = len(horizon.LINES)
    for c, (h, s) in enumerate(combos):
        for j, k in enumerate(d.steps):
            app.controls["step_size"].value, app.controls["solver"].value = h, s
            app.controls["steps"].value = k
            data = [rendered(fig, fig.frames[j])[i] for i in sets[c]]
            methods = {f"{key}{c}" for key in horizon.LINES}
            markers = [t for t in data if t.get("name") == "at T" and t.get("legendgroup") in methods]
            assert len(markers) == 2 * n
            rel_markers = app.figure.data[8 + n]  # what the app draws at T in (c)
            assert near([m["y"][0] for m in markers[:n]], rel_markers.y), (h, s, k)
            assert all(list(m["x"]) == [pytest.approx(k * h)] for m in markers)
            lines = [t for t in data if t.get("name") != "at T" and t.get("legendgroup") in methods]
            assert len(lines) == 2 * n and all(len(t["x"]) > 1 for t in lines)
            (at_b,) = [t for t in data if t.get("name") == "at T" and t.get("legendgroup") == f"b{c}"]
            assert list(at_b["x"]) == [pytest.approx(k * h)] * 2
    app.controls["step_size"].value, app.controls["solver"].value, app.controls["steps"].value = 0.02, "rk4", 10


def test_the_buttons_show_one_set_and_the_frames_move_only_what_the_steps_move(app):
    d = app.data
    fig = viz_static.horizon_static_figure(d, app.cost)
    buttons = fig.layout.updatemenus[0].buttons
    sets = len(d.step_sizes) * len(d.solvers)
    for b in buttons:
        visible, indices = b.args
        shown = [i for i, v in zip(indices, visible["visible"]) if v]
        assert len(shown) == len(indices) // sets  # one set of the same size each
    moving = set(fig.frames[0].traces)
    assert all(set(f.traces) == moving for f in fig.frames)
    assert not moving & set(range(3)), "the task and its points do not move"
    # each set starts at the app's default state, and only the chosen one is visible
    start = [t for t in fig.data if t.name and t.name.startswith("model at u(T)")]
    assert len(start) == sets and sum(bool(t.visible) for t in start) == 1
    assert viz_static.page_weight(fig) < 1_000_000


def test_short_keeps_six_digits_and_gaps():
    assert viz_static.short([1.23456789, float("nan"), None, float("inf"), 1e-17]) == [1.23457, None, None, None, 1e-17]


def test_the_payoff_figure_has_every_cell():
    """A made-up view (2 trained N, 3 test N, 2 tasks): the upper slider picks a set, each frame holds every set."""
    view = {
        "setting": "Toy",
        "reg": 0.0,
        "seed": 0,
        "train": [10, 100],
        "test": [0, 10, 100],
        "tasks": [0, 1],
        "x": torch.linspace(-1, 1, 5),
        "truth": torch.zeros(2, 5),
        "support": (torch.zeros(2, 3), torch.zeros(2, 3)),
        "pred": torch.arange(2 * 3 * 2 * 5, dtype=torch.float64).reshape(2, 3, 2, 5),
        "cross": {"train": [10, 100], "test": [0, 10, 100], "mean": [[0.5, 0.4, 0.3], [0.4, 0.3, 0.2]]},
    }
    fig = viz_static.payoff_static_figure(view)
    train, test = fig.layout.sliders
    assert [s.label for s in train.steps] == ["10", "100"] and [s.label for s in test.steps] == ["0", "10", "100"]
    assert test.active == 2 and train.active == 0
    for j, frame in enumerate(fig.frames):
        # per trained N: its two tasks' adapted curves, then its framed cell
        for i in range(2):
            for k in range(2):
                assert list(frame.data[3 * i + k].y) == view["pred"][i, j, k].tolist()
            assert list(frame.data[3 * i + 2].x) == [str(view["test"][j])]
    visible, indices = train.steps[1].args
    assert [v for v in visible["visible"]] == [False] * 3 + [True] * 3 and len(indices) == 6


def test_every_frame_of_the_directions_explorer_is_the_apps_state():
    from amaml_lab.viz.static import directions_static_figure, short
    from amaml_lab.widgets.directions import DirectionsExplorer

    found = {
        label: {
            "spectrum": {str(n): [3.0 * n + k, 0.5, 1e-5] for n in (1, 10, 100)},
            "directions": {
                str(n): {
                    name: {"pairwise_cosine": 0.1 * j + n / 1e3 + k}
                    for j, name in enumerate(("exact", "fomaml", "reptile"))
                }
                for n in (10, 100)
            },
        }
        for k, label in enumerate(("a", "b"))
    }
    app = DirectionsExplorer(found)
    fig = directions_static_figure(found)
    assert [f.name for f in fig.frames] == ["1", "10", "100"] and fig.layout.sliders[0].active == 2
    for frame in fig.frames:
        app.controls["steps"].value = int(frame.name)
        assert list(frame.traces) == list(range(len(app.figure.data)))
        for got, want in zip(frame.data, app.figure.data):
            assert list(got.y) == short(list(want.y))
        assert [a.text for a in frame.layout.annotations] == [a.text for a in app.figure.layout.annotations]


def test_every_state_of_the_baselines_explorer_is_the_apps():
    """Each slider of the static baselines explorer restyles only its own traces, and any combination of their
    positions draws what the app draws at those values (the dotted line at the app's steps, spanning every state)."""
    from amaml_lab.tasks.examples import build_task

    app = widgets.BaselineExplorer(*build_task(8, "float64", "cpu", 4, 0), steps_list=(4, 8), truncate=3)
    lams = app.lams
    fig = viz_static.baselines_static_figure(app.table, lams, 2.0, 5, 3, 8)
    assert [s.currentvalue.prefix for s in fig.layout.sliders] == [
        "iMAML λ: ",
        "CG steps: ",
        "truncation: ",
        "inner steps: ",
    ]
    assert viz_static.page_weight(fig) < 300_000

    def drawn(figure):
        return [(t.name, list(t.x), list(t.y)) for t in figure.data if t.visible is not False and t.name != "steps now"]

    def apply(figure, slider, position):
        args = figure.layout.sliders[slider].steps[position].args
        figure.plotly_restyle(args[0], trace_indexes=args[1])

    assert all(a[:2] == b[:2] and near(a[2], b[2]) for a, b in zip(drawn(fig), drawn(app.figure), strict=True))
    for lam_at, cg, k, steps in ((3, 1, 8, 4), (25, 20, 1, 8), (13, 7, 5, 4)):
        for slider, position in ((0, lam_at), (1, cg - 1), (2, k - 1), (3, (4, 8).index(steps))):
            apply(fig, slider, position)
        app.controls["lam"].value = lams[lam_at]
        app.controls["cg_steps"].value, app.controls["truncate"].value = cg, k
        app.controls["steps"].value = steps
        pairs = list(zip(drawn(fig), drawn(app.figure), strict=True))
        assert all(a[:2] == b[:2] and near(a[2], b[2]) for a, b in pairs), (lam_at, cg, k, steps)
        lines = [t for t in fig.data if t.name == "steps now"]
        assert [list(t.x) for t in lines] == [[steps, steps]] * 2
