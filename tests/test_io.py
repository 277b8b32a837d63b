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


@pytest.mark.integration  # starts other processes
def test_one_writer_per_folder_and_a_nested_take_by_the_same_process(tmp_path):
    """The lock file names its holder; another process is refused while it holds it and takes it once it is gone;
    the same process may take it again inside (the outer take releases it)."""
    import subprocess
    import sys

    from amaml_lab.io import LOCK_NAME, FolderBusy, FolderLock

    folder = tmp_path / "run"
    take = (
        "import sys; from amaml_lab.io import FolderLock\n"
        "with FolderLock(sys.argv[1]): print('took', flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", take, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert other.stdout.readline().strip() == "took"
    assert (folder / LOCK_NAME).read_text().strip() == str(other.pid)
    with pytest.raises(FolderBusy, match=f"written by process {other.pid}"):
        with FolderLock(folder):
            pass
    other.stdin.close()
    other.wait()
    with FolderLock(folder):  # a dead holder's lock is no lock
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        with FolderLock(folder):
            pass
        probe = subprocess.run([sys.executable, "-c", take, str(folder)], input="", capture_output=True, text=True)
        assert probe.returncode != 0 and "FolderBusy" in probe.stderr  # still held after the nested take
    probe = subprocess.run([sys.executable, "-c", take, str(folder)], input="", capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "took"
