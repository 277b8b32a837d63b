"""Atomic writes: a kill at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile


def _atomic(path, write, binary: bool) -> None:
    """Write through ``write(fh)`` into a temporary file beside ``path``, flush it to disk, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text), binary=False)


def write_json_atomic(path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def save_torch_atomic(obj, path) -> None:
    """``torch.save`` into ``path`` atomically (checkpoints)."""
    import torch

    _atomic(path, lambda fh: torch.save(obj, fh), binary=True)


def md5_file(path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB chunks (download checksums)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


LOCK_NAME = ".writer.lock"


class FolderBusy(ValueError):
    """Another live process writes this folder (the command line exits 2 with this one line)."""


class FolderLock:
    """One writer per folder: an exclusive ``flock`` on ``FOLDER/.writer.lock``, which holds the writer's pid.

    The lock goes with the process that took it (the operating system releases it when that process ends, however
    it ends), so a lock left by a dead process is no lock: the next writer takes it and writes its own pid.
    Processes the writer starts do not inherit it (Python closes their file descriptors), but a writer orphaned by
    its parent's kill still holds it, and a second writer is then refused with the orphan's pid.  A process may
    take the lock it holds again (nested: the outer one releases it).  Where ``fcntl`` does not exist (Windows)
    nothing is locked.
    """

    held: set = set()  # the lock files this process holds

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.abspath(os.path.join(self.folder, LOCK_NAME))
        self.fh = None

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # not POSIX
            return self
        if self.path in FolderLock.held:
            return self
        os.makedirs(self.folder, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise FolderBusy(
                f"{self.folder} is being written by process {holder} (it holds {self.path}); wait for"
                " it to end or stop it, or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self.fh = fh
        FolderLock.held.add(self.path)
        return self

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            FolderLock.held.discard(self.path)
            self.fh.close()  # closing the file releases the lock
            self.fh = None
