"""Meta-batches across processes with torch.distributed: each rank takes a slice of the tasks.

    torchrun --standalone --nproc_per_node=N -m amaml_lab run DOMAIN ...    # or: amaml-lab run ... --nproc N

Every rank draws the same meta-batch (the same seeded generator), keeps its
contiguous slice of tasks, computes their meta-gradients, and the ranks add
``slice size × slice mean`` with one all-reduce, so every rank holds the mean
over the whole meta-batch, as one process would (to rounding), and takes the
same optimiser step.  Rank 0 alone evaluates and writes files and checkpoints;
every rank reads the checkpoint to resume.  gloo on the CPU, NCCL on GPUs.
"""

from __future__ import annotations

import faulthandler
import os

import torch


def world() -> tuple[int, int]:
    """(world size, rank): (1, 0) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def init_from_environment(device: str) -> bool:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); True when it did."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed; run without --nproc / torchrun")
    # a rank that dies in C++ (SIGABRT, SIGSEGV) prints the Python stack of every thread first
    faulthandler.enable()
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return True


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(batch, rank: int, size: int, tasks: int):
    """This rank's contiguous slice of a batch whose tensors lead with the task dimension."""
    lo, hi = bounds(rank, size, tasks)
    return tuple(t[lo:hi] for t in batch)


def bounds(rank: int, size: int, tasks: int) -> tuple[int, int]:
    per, extra = divmod(tasks, size)
    lo = rank * per + min(rank, extra)
    return lo, lo + per + (1 if rank < extra else 0)


def mean_over_ranks(values: list[torch.Tensor], count: int, total: int) -> list[torch.Tensor]:
    """sum over ranks of count × value / total, for each value (one all-reduce)."""
    import torch.distributed as dist

    flat = torch.cat([v.reshape(-1).to(torch.float64) * count for v in values])
    dist.all_reduce(flat)
    flat = flat / total
    out, i = [], 0
    for v in values:
        out.append(flat[i : i + v.numel()].reshape(v.shape).to(v.dtype))
        i += v.numel()
    return out


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def launch(argv: list[str], nproc: int) -> int:
    """Run ``python -m amaml_lab argv`` under torch.distributed's launcher with ``nproc`` ranks; its exit status."""
    from ..procs import run_python

    return run_python(
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "amaml_lab", *argv],
        one_thread=True,
    ).returncode
