"""The benchmark's catalogue: every row ``amaml-lab bench`` can measure, by name, with the meta-gradient's
options (and the kind of task it runs on)."""

CONFIGS = {
    "maml": dict(method="maml"),
    "adjoint": dict(method="adjoint"),
    "adjoint-sqrt": dict(method="adjoint", checkpoints="sqrt"),
    "adjoint-c64": dict(method="adjoint", checkpoints=64),
    "adjoint-grid": dict(method="adjoint", scheme="grid"),
    "adjoint-grid-c64": dict(method="adjoint", scheme="grid", checkpoints=64),
    "adjoint-discrete": dict(method="adjoint", scheme="discrete"),
    "adjoint-discrete-sqrt": dict(method="adjoint", scheme="discrete", checkpoints="sqrt"),
    # the compiled path (amaml_lab.compiled): the warm-up and the memory call compile; the timed calls reuse it
    "maml-compiled": dict(method="maml", compile=True),
    "adjoint-compiled": dict(method="adjoint", compile=True),
    "backsolve": dict(method="backsolve"),
    "maml-sqrt": dict(method="maml", checkpoints="sqrt"),
    "fomaml": dict(method="fomaml"),
    "reptile": dict(method="reptile"),
    "imaml": dict(method="imaml", lam=2.0, cg_steps=5),
    "truncated-10": dict(method="truncated", truncate=10),
    "forward": dict(method="forward"),
    # on a 5-way 5-shot episode of 64-dimensional embeddings (75 query points), the head alone adapting
    "head-maml": dict(method="maml", episode=True),
    "comln": dict(method="comln", episode=True),
    # Conv-4 (64 filters) on a 5-way 1-shot episode of 28 x 28 glyphs with 15 queries per class, float32
    "conv4-maml": dict(method="maml", images=True),
    "conv4-adjoint": dict(method="adjoint", images=True),
    "conv4-adjoint-sqrt": dict(method="adjoint", checkpoints="sqrt", images=True),
    "conv4-fomaml": dict(method="fomaml", images=True),
    "conv4-imaml": dict(method="imaml", lam=2.0, cg_steps=5, images=True),
}


META_STEP_CONFIGS = {
    "adjoint-100": ("adjoint", 100),
    "maml-10": ("maml", 10),
    "maml-100": ("maml", 100),
    "fomaml-100": ("fomaml", 100),
    "reptile-100": ("reptile", 100),
    "imaml-100": ("imaml", 100),
}
