"""Single tasks ready to differentiate, with their losses: the benchmark's CosMixture2D regression task on a tanh
MLP, a COMLN episode of embeddings, and a Conv-4 episode of generated glyphs (used by the benchmark, the
notebooks and ``amaml-lab demo``)."""
from __future__ import annotations


def build_task(shots: int, dtype: str, device: str, hidden: int, seed: int):
    """The benchmark's task: a CosMixture2D regression task and a tanh MLP 2-hidden-2-1."""
    import torch

    from ..functional import module_params, task_losses
    from ..models import mlp
    from .synthetic import cos_mixture_task

    dt = getattr(torch, dtype)
    model = mlp(2, (hidden, hidden), 1, dtype=dt, seed=seed).to(device)
    support, query = cos_mixture_task(shots, shots, dim=2, seed=seed, dtype=dt)
    support = tuple(v.to(device) for v in support)
    query = tuple(v.to(device) for v in query)
    support_loss, query_loss = task_losses(model, support, query)
    return support_loss, query_loss, module_params(model)


def build_episode(dtype: str, device: str, seed: int, ways: int = 5, shots: int = 5, queries: int = 15, dim: int = 64):
    """A COMLN episode: Gaussian class clusters as embeddings, a zero-initialised linear head."""
    import torch

    from ..metagrad.comln import comln_task

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ways, dim, generator=g, dtype=dt)
    ys = torch.arange(ways).repeat_interleave(shots)
    yq = torch.arange(ways).repeat_interleave(queries)
    fs = centers[ys] + torch.randn(len(ys), dim, generator=g, dtype=dt)
    fq = centers[yq] + torch.randn(len(yq), dim, generator=g, dtype=dt)
    support_loss, query_loss, theta, adapt = comln_task(fs.to(device), ys.to(device), fq.to(device), yq.to(device),
                                                        torch.zeros(ways, dim, dtype=dt, device=device))
    return support_loss, query_loss, theta, adapt


def build_images(device: str, seed: int, ways: int = 5, shots: int = 1, queries: int = 15):
    """A Conv-4 few-shot task on generated glyphs (timing and memory do not depend on the drawings)."""
    import torch

    from ..functional import module_params
    from ..models import conv4
    from .omniglot import demo_characters, episodes, with_rotations

    classes = with_rotations(demo_characters(ways, drawings=shots + queries, seed=seed))
    (xs, ys), (xq, yq) = episodes(classes, 1, ways, shots, queries, torch.Generator().manual_seed(seed))
    model = conv4(ways, seed=seed).to(device)
    xs, ys, xq, yq = xs[0].to(device), ys[0].to(device), xq[0].to(device), yq[0].to(device)

    def support_loss(params):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (xs,)), ys)

    def query_loss(params):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (xq,)), yq)

    return support_loss, query_loss, module_params(model)
