"""Memory measured, not reported: what a method keeps, measured from outside its own counters.

* maml and checkpointed maml: the bytes autograd saves for the backward pass, tracked live through
  ``torch.autograd.graph.saved_tensors_hooks`` (each saved tensor counted while the graph holds it).
* the adjoint with and without checkpoints: the peak of the C heap above its level before the call, sampled
  every millisecond by ``python -m amaml_lab.bench`` in a fresh process per measurement.

At two step counts: stored memory must grow with the steps, checkpointed memory must not (or, for maml's
sqrt segments, only like the square root).  These fail when checkpointing is quietly disabled.
"""

import json
import subprocess
import sys

import pytest
import torch

from amaml_lab import meta_gradient
from amaml_lab.functional import module_params, task_losses
from amaml_lab.models import mlp


class LiveSaved:
    """Bytes autograd holds for backward right now, and the peak: a saved tensor counts until its graph is freed."""

    def __init__(self):
        self.live = self.peak = 0

    def pack(self, tensor):
        return _Held(self, tensor)

    @staticmethod
    def unpack(held):
        return held.tensor


class _Held:
    def __init__(self, meter, tensor):
        self.meter, self.tensor, self.nbytes = meter, tensor, tensor.numel() * tensor.element_size()
        meter.live += self.nbytes
        meter.peak = max(meter.peak, meter.live)

    def __del__(self):
        self.meter.live -= self.nbytes


def task(points=20):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(points, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(3 * x[:, :1]) + x[:, 1:]
    model = mlp(2, (16, 16), 1, seed=0)
    support_loss, query_loss = task_losses(model, (x, y), (x, y))
    return support_loss, query_loss, module_params(model)


def saved_peak(steps, **options):
    support_loss, query_loss, theta = task()
    meter = LiveSaved()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        meta_gradient(support_loss, query_loss, theta, method="maml", steps=steps, step_size=0.01, reg=1.0, **options)
    assert meter.live == 0  # every graph was freed
    return meter.peak


def test_maml_keeps_its_graph_and_checkpointed_maml_does_not():
    few, many = 16, 256  # 16 times the steps
    full = saved_peak(many) / saved_peak(few)
    sqrt = saved_peak(many, checkpoints="sqrt") / saved_peak(few, checkpoints="sqrt")
    assert full > 12, f"maml's saved tensors grew only {full:.1f}x for 16x the steps"
    assert sqrt < 6, f"checkpointed maml's saved tensors grew {sqrt:.1f}x for 16x the steps (sqrt: about 4x)"
    # and at the larger step count checkpointing keeps far less
    assert saved_peak(many, checkpoints="sqrt") < saved_peak(many) / 6


def heap_peaks(methods, steps, folder):
    out = folder / "rows.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "amaml_lab.bench",
            "--steps",
            ",".join(map(str, steps)),
            "--methods",
            ",".join(methods),
            "--shots",
            "10",
            "--repeat",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return {(r["name"], r["steps"]): r["peak_mb"] for r in json.loads(out.read_text())}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the heap sampler reads glibc's mallinfo2")
def test_stored_adjoint_memory_grows_with_steps_and_checkpointed_does_not(tmp_path):
    """Every state of a 2-32-32-1 MLP is 9.5 kB: 1,000 more steps are 9.5 MB more for the stored adjoint."""
    peaks = heap_peaks(["adjoint", "adjoint-c64"], [100, 1100], tmp_path)
    stored = peaks[("adjoint", 1100)] - peaks[("adjoint", 100)]
    checkpointed = peaks[("adjoint-c64", 1100)] - peaks[("adjoint-c64", 100)]
    assert stored > 6, f"the stored adjoint's peak grew only {stored:.2f} MB for 1,000 more steps"
    assert checkpointed < 2, f"the checkpointed adjoint's peak grew {checkpointed:.2f} MB for 1,000 more steps"


def test_memory_budget_refuses_unrolled_rows_past_it_and_the_adjoint_carries_on(tmp_path):
    """--memory-budget: maml's peak at 1,100 steps, extrapolated from 100 and 600, is refused under a budget
    below it, while the checkpointed adjoint runs at 1,100; the prediction is the line through the two rows."""
    from amaml_lab.bench import predicted_peak

    rows = [
        {"name": "maml", "steps": 100, "peak_mb": 2.0},
        {"name": "maml", "steps": 600, "peak_mb": 7.0},
        {"name": "adjoint", "steps": 600, "peak_mb": 99.0},
    ]
    assert predicted_peak(rows, "maml", 1100) == pytest.approx(12.0)
    assert predicted_peak(rows, "adjoint", 1100) is None  # one row: growth not yet measured
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "amaml_lab.bench",
            "--steps",
            "100,600,1100",
            "--methods",
            "maml,adjoint-c64",
            "--shots",
            "20",
            "--repeat",
            "1",
            "--memory-budget",
            "0.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = {(r["name"], r["steps"]): r for r in json.loads(out.read_text())}
    maml = rows[("maml", 1100)]
    assert "time_s" not in maml and maml["error"].startswith("refused") and "0.5 MB budget" in maml["error"]
    expected = predicted_peak([rows[("maml", 100)], rows[("maml", 600)]], "maml", 1100)
    assert maml["predicted_mb"] == pytest.approx(expected) and expected > 0.5
    assert "time_s" in rows[("adjoint-c64", 1100)] and "refused" in done.stdout
