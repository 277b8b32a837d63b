"""Omniglot few-shot classification: the official zips, the standard preprocessing, seeded N-way K-shot episodes.

Archives (the ``python/`` folder of the Omniglot repository) are read from a
data root or downloaded into a cache, each checked against its MD5:

* full: ``images_background.zip`` (30 alphabets, 964 characters) and
  ``images_evaluation.zip`` (20 alphabets, 659 characters); the 1,623
  characters are shuffled (seed 123) and split 1,200 meta-train / 423 meta-test,
  as in the iMAML code;
* small: ``images_background_small1.zip`` (136 characters, meta-train) and
  ``images_background_small2.zip`` (156 characters, meta-test): disjoint
  alphabets, used where the full set is not at hand;
* demo: generated glyphs (:func:`demo_characters`), not Omniglot, so that a
  FAST notebook runs where no archive is at hand.

Each 105 x 105 drawing becomes a 28 x 28 greyscale image (PIL's LANCZOS),
inverted so that strokes are 1 and the background 0; every character's
rotations by 0, 90, 180 and 270 degrees are four classes, as in MAML.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io import md5_file

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
ARCHIVES = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
    "images_background_small1.zip": "e704a628b5459e08445c13499850abc4",
    "images_background_small2.zip": "b75a71a51d3b13f821f212756fe481fd",
}
SUBSETS = {
    "full": ("images_background.zip", "images_evaluation.zip"),
    "small": ("images_background_small1.zip", "images_background_small2.zip"),
}
SPLIT_SEED, TRAIN_CHARACTERS = 123, 1200


def locate(name: str, data_root=None, cache=None, download: bool = True) -> Path:
    """The checked path of archive ``name``: under ``data_root`` (or its ``omniglot/``), in ``cache``, or downloaded."""
    if name not in ARCHIVES:
        raise ValueError(f"archive={name!r} is not an Omniglot archive; allowed values: {', '.join(ARCHIVES)}")
    cache = Path(cache or Path.home() / ".cache" / "amaml_lab" / "omniglot")
    folders = ([Path(data_root), Path(data_root) / "omniglot"] if data_root is not None else []) + [cache]
    for folder in folders:
        path = folder / name
        if path.is_file():
            got = md5_file(path)
            if got != ARCHIVES[name]:
                raise ValueError(
                    f"{path} has MD5 {got}, not {ARCHIVES[name]}; delete it and download {BASE_URL}{name}"
                    " again, or point --data-root at a good copy"
                )
            return path
    if data_root is not None or not download:
        where = f"--data-root {data_root}" if data_root is not None else str(cache)
        raise FileNotFoundError(
            f"{name} is not under {where}; download {BASE_URL}{name} (MD5 {ARCHIVES[name]})"
            " into a folder and pass it as --data-root"
        )
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / (name + ".part")
    try:
        with urllib.request.urlopen(BASE_URL + name, timeout=60) as response, open(partial, "wb") as fh:
            shutil.copyfileobj(response, fh)
    except OSError as err:
        raise FileNotFoundError(
            f"could not download {BASE_URL}{name} ({err}); download it by hand and pass"
            " --data-root with the folder that holds it"
        ) from None
    if md5_file(partial) != ARCHIVES[name]:
        partial.unlink()
        raise ValueError(f"the download of {BASE_URL}{name} does not have MD5 {ARCHIVES[name]}; try again")
    os.replace(partial, cache / name)
    return cache / name


def read_archive(path, size: int = 28) -> tuple[list[str], torch.Tensor]:
    """(character names, images of shape (characters, drawings, size, size)) from one Omniglot zip.

    Characters are ``alphabet/characterNN`` folders in sorted order, drawings
    sorted by file name; every character must have the same number of drawings.
    """
    from PIL import Image

    groups: dict[str, list[str]] = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            parts = member.split("/")
            if member.endswith(".png") and len(parts) >= 4:
                groups.setdefault("/".join(parts[-3:-1]), []).append(member)
        if not groups:
            raise ValueError(f"{path} holds no ALPHABET/characterNN/*.png drawings")
        names = sorted(groups)
        counts = {len(groups[n]) for n in names}
        if len(counts) != 1:
            raise ValueError(f"{path}: characters have different numbers of drawings ({sorted(counts)})")
        images = torch.empty(len(names), counts.pop(), size, size)
        for i, name in enumerate(names):
            for j, member in enumerate(sorted(groups[name])):
                with Image.open(io.BytesIO(zf.read(member))) as im:
                    small = im.convert("L").resize((size, size), Image.LANCZOS)
                images[i, j] = (
                    1.0
                    - torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).view(size, size).float() / 255.0
                )
    return names, images


def with_rotations(images: torch.Tensor) -> torch.Tensor:
    """Characters (C, D, H, W) -> classes (4C, D, H, W): each character at 0, 90, 180 and 270 degrees."""
    return torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])


@dataclass
class Omniglot:
    """Meta-train and meta-test classes (rotations included) of one subset, images (classes, drawings, 28, 28)."""

    subset: str
    train: torch.Tensor
    test: torch.Tensor
    train_characters: list
    test_characters: list


def demo_characters(characters: int, drawings: int = 20, size: int = 28, seed: int = 0) -> torch.Tensor:
    """*Generated* glyphs, not Omniglot: each character a few random strokes, each drawing a jittered copy.

    Drawn at 105 x 105 and reduced with LANCZOS like the real images; (characters,
    drawings, size, size), strokes 1.  A stand-in so that notebooks and tests can
    run end to end where the archives are not at hand.
    """
    from PIL import Image, ImageDraw

    g = torch.Generator().manual_seed(seed)
    out = torch.empty(characters, drawings, size, size)
    for c in range(characters):
        strokes = (torch.rand(3, 4, generator=g) * 70 + 17).tolist()
        for d in range(drawings):
            im = Image.new("L", (105, 105), 0)
            draw = ImageDraw.Draw(im)
            shift = (torch.randn(2, generator=g) * 3).tolist()
            for x0, y0, x1, y1 in strokes:
                jitter = (torch.randn(4, generator=g) * 2.5).tolist()
                draw.line(
                    [
                        x0 + shift[0] + jitter[0],
                        y0 + shift[1] + jitter[1],
                        x1 + shift[0] + jitter[2],
                        y1 + shift[1] + jitter[3],
                    ],
                    fill=255,
                    width=7,
                )
            small = im.resize((size, size), Image.LANCZOS)
            out[c, d] = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).view(size, size).float() / 255
    return out


def load(
    data_root=None, subset: str = "auto", cache=None, download: bool = True, train_characters: int = TRAIN_CHARACTERS
) -> Omniglot:
    """The Omniglot split: ``subset`` "full", "small", or "auto" (full where both full zips are found, else small).

    The full set's characters are shuffled with seed 123 and the first
    ``train_characters`` (1,200) are meta-train, the rest (423) meta-test.
    """
    if subset not in ("auto", *SUBSETS, "demo"):
        raise ValueError(f"subset={subset!r} is not known; allowed values: auto, {', '.join(SUBSETS)}, demo")
    if subset == "demo":  # generated glyphs (see demo_characters): 60 meta-train, 30 meta-test characters
        chars = demo_characters(90)
        names = [f"demo/character{i + 1:02d}" for i in range(90)]
        return Omniglot("demo", with_rotations(chars[:60]), with_rotations(chars[60:]), names[:60], names[60:])
    paths = None
    if subset in ("auto", "full"):
        try:
            paths = [locate(n, data_root, cache, download=download and subset == "full") for n in SUBSETS["full"]]
            subset = "full"
        except FileNotFoundError:
            if subset == "full":
                raise
            subset = "small"
    if paths is None:
        paths = [locate(n, data_root, cache, download) for n in SUBSETS["small"]]
    (names_a, a), (names_b, b) = read_archive(paths[0]), read_archive(paths[1])
    if subset == "small":
        return Omniglot("small", with_rotations(a), with_rotations(b), names_a, names_b)
    names = names_a + names_b
    images = torch.cat([a, b])
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(SPLIT_SEED))
    if not 0 < train_characters < len(names):
        raise ValueError(f"train_characters must be in 1..{len(names) - 1}; got {train_characters}")
    train, test = order[:train_characters], order[train_characters:]
    return Omniglot(
        "full",
        with_rotations(images[train]),
        with_rotations(images[test]),
        [names[i] for i in train.tolist()],
        [names[i] for i in test.tolist()],
    )


def episodes(classes: torch.Tensor, count: int, ways: int, shots: int, query: int, generator: torch.Generator):
    """``count`` N-way K-shot episodes: ((xs, ys), (xq, yq)) with x (count, ways*n, 1, 28, 28), y (count, ways*n).

    Classes and drawings are drawn without replacement within an episode;
    labels are 0..ways-1 in the order the classes were drawn.
    """
    n_classes, drawings = classes.shape[:2]
    if ways > n_classes:
        raise ValueError(f"ways={ways} is more than the {n_classes} classes of this split")
    if shots + query > drawings:
        raise ValueError(f"shots + query = {shots + query} is more than the {drawings} drawings of a character")
    xs, xq = [], []
    for _ in range(count):
        chosen = torch.randperm(n_classes, generator=generator)[:ways]
        picks = torch.stack([torch.randperm(drawings, generator=generator)[: shots + query] for _ in range(ways)])
        imgs = classes[chosen[:, None], picks]  # (ways, shots + query, H, W)
        xs.append(imgs[:, :shots].reshape(ways * shots, 1, *classes.shape[2:]))
        xq.append(imgs[:, shots:].reshape(ways * query, 1, *classes.shape[2:]))
    ys = torch.arange(ways).repeat_interleave(shots).expand(count, -1).clone()
    yq = torch.arange(ways).repeat_interleave(query).expand(count, -1).clone()
    return (torch.stack(xs), ys), (torch.stack(xq), yq)
