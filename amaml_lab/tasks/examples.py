"""Single tasks ready to differentiate, with their losses: the benchmark's CosMixture2D regression task on a tanh
MLP, a COMLN episode of embeddings, and a Conv-4 episode of generated glyphs (used by the benchmark, the
notebooks and ``amaml-lab demo``)."""

from __future__ import annotations


def build_task(shots: int, dtype: str, device: str, hidden: int, seed: int):
    """The benchmark's task: a CosMixture2D regression task and a tanh MLP 2-hidden-hidden-1.

    Args:
        shots: the number of support points and of query points.
        dtype: the name of a torch floating-point dtype, ``"float32"`` or ``"float64"``.
        device: where the model and the data live (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        hidden: the width of each of the MLP's two hidden layers.
        seed: seeds the MLP's initialisation and the task's draw
            (:func:`~amaml_lab.tasks.synthetic.cos_mixture_task`).

    Returns:
        ``(support_loss, query_loss, theta)``: the MLP's mean squared errors on the support and on the query set,
        callables ``params -> scalar tensor``, and its initial parameters, a dict of tensors.
    """
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
    """A COMLN episode: Gaussian class clusters as embeddings, a zero-initialised linear head.

    Args:
        dtype: the name of a torch floating-point dtype, ``"float32"`` or ``"float64"``.
        device: where the tensors live (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        seed: seeds the class centres and the embeddings around them.
        ways: the number of classes.
        shots: support embeddings per class.
        queries: query embeddings per class.
        dim: the embeddings' dimension.

    Returns:
        ``(support_loss, query_loss, theta, adapt)`` from :func:`~amaml_lab.metagrad.comln.comln_task`: the head's
        mean cross-entropy on the support and on the query embeddings; ``theta``, a dict of the head's ``weight``
        (ways, dim) and ``bias`` (ways), both zero, and the embeddings ``support_features`` (ways * shots, dim) and
        ``query_features`` (ways * queries, dim); ``adapt``, the head's keys (``weight``, ``bias``).
    """
    import torch

    from ..metagrad.comln import comln_task

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(ways, dim, generator=g, dtype=dt)
    ys = torch.arange(ways).repeat_interleave(shots)
    yq = torch.arange(ways).repeat_interleave(queries)
    fs = centers[ys] + torch.randn(len(ys), dim, generator=g, dtype=dt)
    fq = centers[yq] + torch.randn(len(yq), dim, generator=g, dtype=dt)
    support_loss, query_loss, theta, adapt = comln_task(
        fs.to(device), ys.to(device), fq.to(device), yq.to(device), torch.zeros(ways, dim, dtype=dt, device=device)
    )
    return support_loss, query_loss, theta, adapt


def build_images(device: str, seed: int, ways: int = 5, shots: int = 1, queries: int = 15):
    """A Conv-4 few-shot task on generated glyphs (timing and memory do not depend on the drawings).

    Args:
        device: where the model and the images live (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        seed: seeds the glyphs, the episode's draw and the Conv-4's initialisation.
        ways: the number of classes, drawn from ``ways`` generated characters and their rotations.
        shots: support images per class.
        queries: query images per class.

    Returns:
        ``(support_loss, query_loss, theta)``: the Conv-4's cross-entropy on the ways * shots support images and on
        the ways * queries query images (float32, 1 x 28 x 28), callables ``params -> scalar tensor``, and its
        initial parameters, a dict of float32 tensors.
    """
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
