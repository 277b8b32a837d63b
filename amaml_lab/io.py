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
