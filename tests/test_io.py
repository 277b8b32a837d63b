import json
import os

import pytest

from amaml_lab.io import write_json_atomic, write_text_atomic


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p for p in os.listdir(path.parent) if p.startswith(".tmp-")] == []


def test_failed_write_leaves_old_file(tmp_path):
    path = tmp_path / "x.txt"
    write_text_atomic(path, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        write_text_atomic(path, Boom())
    assert path.read_text() == "old"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []


def test_torch_checkpoint_written_atomically(tmp_path):
    import torch

    from amaml_lab.io import save_torch_atomic

    path = tmp_path / "checkpoint.pt"
    save_torch_atomic({"x": torch.arange(3)}, path)
    assert torch.equal(torch.load(path)["x"], torch.arange(3))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []
