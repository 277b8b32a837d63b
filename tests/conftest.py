"""Fixtures from tests/helpers.py (a quadratic task with closed forms, a small MLP task), one thread a test, and
the CUDA tests skipped with their reason where there is no GPU.  Tests import helpers from ``helpers``, never from
here."""

import os

# tests compute on tiny tensors: one thread each (also in the processes and kernels they start) keeps them
# steady, where two OpenMP threads on a busy two-core machine spin against each other a hundredfold slower
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import MLPTask, Quadratic  # noqa: E402


@pytest.fixture
def quad():
    return Quadratic()


@pytest.fixture
def mlp_task():
    return MLPTask()


def pytest_collection_modifyitems(config, items):
    """Every test under tests/integration is marked ``integration`` (``make test`` runs ``-m "not integration"``);
    tests marked ``cuda`` skip, with the reason, where this torch sees no CUDA GPU."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); run `pytest -m cuda` on one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
