"""Measurement primitives: time and peak memory of a call in this process, the parent's side of the worker
processes that measure each row in a fresh Python process, and the measured memory rows read back.

Peak memory is the working memory of the call: on CUDA ``torch.cuda.max_memory_allocated`` above what was
allocated before it; on the CPU the peak of the bytes the C heap has handed out (glibc's ``mallinfo2``: tensors
and Python objects, not allocator slack) above the level before the call, sampled every millisecond.  Times are
wall-clock seconds, the fastest of ``repeat`` runs made without the memory sampler.  The worker
(``python -m amaml_lab.bench.worker``, named here, never imported: what it measures sits in higher layers) runs
one row (``--worker JSON``) or rows read from stdin (``--worker-stream``).
"""

from __future__ import annotations

import ctypes
import gc
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from .procs import run_python, start_python

WORKER = "amaml_lab.bench.worker"


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap_reader():
    """Bytes the C heap has handed out and not taken back (glibc's mallinfo2), or None off glibc."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2

    def live() -> int:
        info = fn()
        return info.uordblks + info.hblkhd

    return live


class _PeakSampler(threading.Thread):
    """Samples live heap bytes every millisecond until stopped."""

    def __init__(self, read):
        super().__init__(daemon=True)
        self.read = read
        self.peak = read()
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            t0 = time.perf_counter()
            self.peak = max(self.peak, self.read())
            # reading takes the allocator's lock: keep it under ~5% of the time
            time.sleep(max(0.001, 20 * (time.perf_counter() - t0)))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, self.read())


def select_device(device: str) -> None:
    """Make ``cuda:N`` the current device (memory statistics and synchronisation are the current device's);
    plain ``cuda`` is the current one already (torch.cuda.set_device refuses a device without an index)."""
    import torch

    if device.startswith("cuda") and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))


def peak_and_times(call, cfg: dict, on_cuda: bool = False):
    """(the result of a first call, its peak working memory in bytes, the times of ``cfg["repeat"]`` more).

    Memory first, with the sampler (or CUDA's peak statistics); then the timed
    calls without it, stopping early once they pass ``cfg["time_budget"]`` seconds.
    """
    import torch

    gc.collect()
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = call()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        read = heap_reader()
        if read is None:
            raise SystemExit("peak memory on the CPU needs glibc's mallinfo2; run on Linux or with --device cuda")
        base = read()
        sampler = _PeakSampler(read)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)  # the sampler gets the GIL every 0.1 ms, not 5: a short call's peak is seen
        sampler.start()
        try:
            result = call()
        finally:
            peak = sampler.stop() - base
            sys.setswitchinterval(switch)
    times = []
    for _ in range(cfg["repeat"]):
        gc.collect()
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if sum(times) > cfg["time_budget"]:
            break
    return result, peak, times


def run_worker(cfg: dict) -> dict:
    """One measurement in a fresh Python process (the worker, :mod:`amaml_lab.bench.worker`): its row, or
    ``{"error": its last line}``."""
    proc = run_python(["-m", WORKER, "--worker", json.dumps(cfg)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode:d}"])[-1]
        return {"error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stream(cfgs: list[dict]):
    """Measure ``cfgs`` one after the other in one separate Python process; yield each row as it arrives.

    A row with ``"error"`` stands for a measurement that failed (the rest go on).
    """
    proc = start_python(
        ["-m", WORKER, "--worker-stream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdin.write(json.dumps(cfgs))
    proc.stdin.close()
    got, stderr = 0, ""
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                got += 1
                yield json.loads(line)
        proc.wait()
        if got < len(cfgs):
            stderr = proc.stderr.read()
    finally:  # closed here, not left to the garbage collector (which warns: ResourceWarning, unclosed file)
        proc.stdout.close()
        proc.stderr.close()
    if got < len(cfgs):
        last = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        for cfg in cfgs[got:]:
            yield {**cfg, "error": last}


def memory_rows(path) -> list[dict]:
    """The memory arm's rows (results/horizon/memory-conv4.json): name, steps, peak_mb or the refusal."""
    return json.loads(Path(path).read_text())


def memory_table(rows) -> str:
    lines = [
        "| inner steps N | " + " | ".join(sorted({r["name"] for r in rows}, key=memory_order)) + " |",
        "|---:|" + "---:|" * len({r["name"] for r in rows}),
    ]
    names = sorted({r["name"] for r in rows}, key=memory_order)
    for n in sorted({r["steps"] for r in rows}):
        cells = []
        for name in names:
            row = next((r for r in rows if r["steps"] == n and r["name"] == name), None)
            if row is None:
                cells.append("")
            elif "peak_mb" in row:
                cells.append(f"{row['peak_mb']:,.0f} MB, {row['time_s']:.1f} s")
            else:
                cells.append(
                    f"refused ({row['predicted_mb']:,.0f} MB predicted)"
                    if "predicted_mb" in row
                    else row.get("error", "skipped")
                )
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def memory_order(name: str) -> tuple:
    return ("maml" not in name, "sqrt" in name, name)
