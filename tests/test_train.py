"""Meta-training: a resumed run ends exactly where an uninterrupted one does."""
import pytest
import torch

from amaml_lab.train import RunConfig, meta_train


def config(**kw):
    base = dict(domain="Sinusoid", shots=5, query=5, inner_steps=3, method="adjoint", meta_steps=6, tasks=4,
                pool=20, hidden=4, checkpoint_every=2, meta_batch=2, step_size=0.05)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_equals_uninterrupted(tmp_path, optimizer):
    whole = meta_train(config(optimizer=optimizer), tmp_path / "a")
    meta_train(config(optimizer=optimizer, meta_steps=4), tmp_path / "b")
    resumed = meta_train(config(optimizer=optimizer), tmp_path / "b", resume=True)
    assert resumed["meta_steps"] == whole["meta_steps"] == 6
    assert all(torch.equal(whole["theta"][k], resumed["theta"][k]) for k in whole["theta"])
    assert whole["losses"] == resumed["losses"]


def test_training_lowers_the_query_loss(tmp_path):
    run = meta_train(config(meta_steps=40, meta_lr=0.05, checkpoint_every=40), tmp_path)
    first, last = sum(run["losses"][:8]) / 8, sum(run["losses"][-8:]) / 8
    assert last < first


def test_resume_refuses_another_configuration(tmp_path):
    meta_train(config(meta_steps=2), tmp_path)
    with pytest.raises(ValueError, match="another configuration"):
        meta_train(config(meta_steps=4, shots=6), tmp_path, resume=True)


@pytest.mark.parametrize("kw,pattern", [
    (dict(domain="Ackley"), "domain='Ackley' is not known"),
    (dict(shots=0), "shots must be an integer >= 1"),
    (dict(inner_steps=-1), "inner_steps must be an integer >= 1"),
    (dict(optimizer="rmsprop"), "optimizer='rmsprop' is not known; allowed values: sgd, adam"),
])
def test_bad_config(tmp_path, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        meta_train(config(**kw), tmp_path)
