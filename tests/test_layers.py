"""The house's walls (docs/ARCHITECTURE.md): every module imports only from layers below its own, lazy imports
included, so there is no circle; and no module imports another module's private (underscored) name."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amaml_lab"

# The layers, lowest first: each band is a folder of the package ("" for the top level) with its modules in
# groups, lowest first.  A module may import from any module in an earlier group, never from its own group or a
# later one.  Every module of a subpackage sits in its folder's band, so the folders are the layers; the one
# exception is an entry point (``__main__``), which only calls ``cli`` and sits with it.  docs/ARCHITECTURE.md's
# table is made from BANDS (``python tests/test_layers.py`` writes it; a test checks that it is current).
BANDS = [
    (
        "leaves",
        "",
        [("io", "progress", "checks", "threads", "procs", "faces", "moved")],
        "atomic files; progress bars; argument checks; threads; child processes; package faces; old import paths",
    ),
    (
        "engine",
        "",
        [("functional",), ("flow",), ("compiled",)],
        "params as tensors or dicts, gradients and HVPs; the inner loop as an ODE; compiled graphs",
    ),
    (
        "meta-gradients",
        "metagrad",
        [
            ("metagrad.core",),
            ("metagrad.fields",),
            ("metagrad.checkpointing", "metagrad.sweeps"),
            ("metagrad.adjoint", "metagrad.unrolled", "metagrad.first_order", "metagrad.implicit", "metagrad.forward"),
            ("metagrad.comln", "metagrad.backsolve"),
            ("metagrad.dispatch",),
            ("metagrad.batch", "metagrad.compare"),
            ("metagrad",),
        ],
        "every meta-gradient, one module per family, one entry point (meta_gradient)",
    ),
    ("the package's face", "", [("",)], "re-exports of flow, functional and metagrad"),
    ("data", "", [("models",)], "the MLP and Conv-4"),
    (
        "tasks",
        "tasks",
        [
            ("tasks.synthetic", "tasks.movielens", "tasks.jester", "tasks.omniglot"),
            ("tasks.domains", "tasks.examples"),
            ("tasks",),
        ],
        "task families, loaders with checksums, ready-made example tasks",
    ),
    (
        "measurement",
        "",
        [("measure",)],
        "time and peak memory of a call, the measuring worker's parent side, the measured memory rows",
    ),
    (
        "a run",
        "training",
        [
            ("training.distributed", "training.config"),
            ("training.builders",),
            ("training.train",),
            ("training.evaluate",),
            ("training.runs",),
            ("training.warm",),
            ("training",),
        ],
        "settings checked and resolved; the model and losses; meta-training; evaluation; the run folder written;"
        " the first compile paid ahead",
    ),
    (
        "run folders read",
        "studies",
        [
            ("studies.rundir", "studies.stats"),
            ("studies.stopping",),
            ("studies.committed",),
            ("studies.payoff", "studies.diagnosis"),
            ("studies.directions",),
            ("studies",),
        ],
        "a run folder read (no trainer); paired statistics and tables; the committed runs; the horizon experiment"
        " (08); exact or first-order through a long loop (09): the runs' reading and the diagnosis at a theta; the"
        " image runs' stopping rule",
    ),
    (
        "the notebooks' computations",
        "teach",
        [
            ("teach.surfaces", "teach.horizons"),
            ("teach.backward", "teach.baselines", "teach.horizons_data", "teach.payoff"),
            ("teach",),
        ],
        "one module per notebook's subject: surfaces (01), horizons (02), backward (03), baselines (04), payoff (08)",
    ),
    (
        "exercises",
        "teach.exercises",
        [
            ("teach.exercises._judging",),
            ("teach.exercises.steps", "teach.exercises.gradients", "teach.exercises.evaluation"),
            ("teach.exercises",),
        ],
        "every notebook's checked exercise, by subject: the inner loop's steps (01, 03, 09), meta-gradients and the"
        " inner problem (00, 02, 04, 05), reading results (06, 07, 08); the judging they share",
    ),
    (
        "figures",
        "viz",
        [("viz.style",), ("viz.figures",), ("viz.payoff", "viz.horizons", "viz.directions"), ("viz.static",), ("viz",)],
        "plotly figures, one module per subject; the kernel-free explorers (every state precomputed)",
    ),
    (
        "apps",
        "widgets",
        [
            ("widgets.app",),
            ("widgets.surfaces", "widgets.methods", "widgets.payoff", "widgets.directions"),
            ("widgets",),
        ],
        "widget apps: a plain class computes, controls only index",
    ),
    (
        "benchmarks",
        "bench",
        [
            ("bench.catalogue",),
            ("bench.peers", "bench.peers_jax"),
            ("bench.side_by_side",),
            ("bench.worker", "bench.tables", "bench.compile_cost"),
            ("bench.suites",),
            ("bench.report",),
            ("bench",),
        ],
        "the catalogue of rows, the measuring worker, the peers and JAX side by side, the suites and tables",
    ),
    (
        "command line",
        "",
        [("commands",), ("cli",), ("__main__", "bench.__main__")],
        "the commands' bodies; every parser; the entry points (they only call cli)",
    ),
]
LAYERS = [group for _, _, groups, _ in BANDS for group in groups]
ENTRY_POINTS = {"__main__", "bench.__main__"}
# known exceptions, each with its reason (none now)
PRIVATE_EXCEPTIONS: set = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sources() -> dict:
    return {module_name(p): p.read_text() for p in PACKAGE.rglob("*.py")}


def imports(name: str, source: str, modules: set) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every amaml_lab import in ``source``, lazy ones included."""
    is_package = name in {m.rsplit(".", 1)[0] for m in modules if "." in m} or name == ""
    here = name.split(".") if name else []
    package = here if is_package else here[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "amaml_lab":
                target = ".".join(node.module.split(".")[1:])
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}".strip(".")
                found.append((sub, "") if sub in modules else (target, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "amaml_lab":
                    found.append((".".join(alias.name.split(".")[1:]), ""))
    return found + private_attributes(source, found, modules)


def private_attributes(source: str, found: list, modules: set) -> list[tuple[str, str]]:
    """(module, private name) for every ``module._name`` read through a name bound to an imported module
    (``from . import x as y`` then ``y._f``): the private access that no import line shows."""
    tree = ast.parse(source)
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                for target, imported in found:
                    if imported == "" and target.rsplit(".", 1)[-1] == alias.name and target in modules:
                        bound[alias.asname or alias.name] = target
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            out.append((bound[node.value.id], node.attr))
    return out


def violations(srcs: dict) -> list[str]:
    rank = {m: i for i, group in enumerate(LAYERS) for m in group}
    out = [f"{m}: not placed in a layer (add it to LAYERS and docs/ARCHITECTURE.md)" for m in srcs if m not in rank]
    for name, source in srcs.items():
        for target, imported in imports(name, source, set(srcs)):
            if target not in srcs:  # e.g. a relative import left one level short after a move into a package
                out.append(f"{name or 'amaml_lab'} imports amaml_lab.{target}, which is not a module of the package")
            if target in rank and name in rank and rank[target] >= rank[name]:
                out.append(
                    f"{name or 'amaml_lab'} imports {target or 'amaml_lab'}"
                    f"{'.' + imported if imported else ''}: an upward or same-layer import"
                )
            if (
                imported.startswith("_")
                and not imported.startswith("__")
                and target != name
                and (name, target, imported) not in PRIVATE_EXCEPTIONS
            ):
                out.append(f"{name} imports the private name {target}.{imported}")
    return out


def test_every_import_goes_down_and_no_private_name_crosses():
    assert violations(sources()) == []


@pytest.mark.parametrize(
    "module,injected",
    [
        ("functional", "from .cli import main\n"),  # a circle: the engine reaching the command line
        ("flow", "def f():\n    from .metagrad import meta_gradient\n"),  # lazily, too
        ("widgets.app", "from ..measure import _PeakSampler\n"),  # a private name
        ("widgets.methods", "from .. import measure as m\nx = m._PeakSampler\n"),  # one read as an attribute
        ("widgets.methods", "def f():\n    from .measure import stream\n"),  # a module that is not there
        ("training.train", "from .train import Diverged\n"),  # itself: same layer
        ("training.config", "from ..studies.rundir import load_run\n"),  # a lower folder reaching a higher one
    ],
)
def test_an_injected_upward_import_is_caught(module, injected):
    srcs = sources()
    srcs[module] += "\n" + injected
    assert any(v.startswith(module) for v in violations(srcs)), injected


def test_every_module_is_placed_and_every_placed_module_exists():
    placed = {m for group in LAYERS for m in group}
    assert placed == set(sources())


MOST_LINES = {"module": 400, "function": 60}  # docs/ARCHITECTURE.md: short modules and functions


def logical_lines(node, source_lines=None) -> int:
    """The lines of ``node`` that a reader reads: each statement's first line and each docstring's lines, so that
    the formatter's breaks of one long call over several lines do not count (ruff format, make format)."""
    lines = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.stmt):
            lines.add(sub.lineno)
            body = getattr(sub, "body", None)
            if (
                isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    if (
        isinstance(node, ast.Module)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    ):
        lines.update(range(node.body[0].lineno, node.body[0].end_lineno + 1))
    return len(lines)


def sizes(srcs: dict) -> list[str]:
    """Every module over MOST_LINES["module"] logical lines and every function over MOST_LINES["function"]."""
    out = []
    for name, source in srcs.items():
        tree = ast.parse(source)
        if logical_lines(tree) > MOST_LINES["module"]:
            out.append(f"{name}: {logical_lines(tree)} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = logical_lines(node)
                if length > MOST_LINES["function"]:
                    out.append(f"{name}.{node.name}: {length} lines")
    return out


def test_modules_and_functions_are_short():
    assert sizes(sources()) == []


def test_a_long_module_or_function_is_caught():
    srcs = {name: source for name, source in sources().items() if name in ("flow", "checks")}
    srcs["flow"] += "\nx = 1" * 401
    srcs["checks"] += "\ndef long():\n" + "    x = 1\n" * 60
    found = sizes(srcs)
    assert found[0].startswith("flow: ") and int(found[0].split()[-2]) > 400 and found[1:] == ["checks.long: 61 lines"]


def test_a_call_broken_over_many_lines_counts_once():
    wrapped = "def f():\n    g(\n" + "        1,\n" * 80 + "    )\n"
    assert sizes({"m": wrapped}) == [] and logical_lines(ast.parse(wrapped).body[0]) == 2


def test_the_folders_are_the_layers():
    """Every module of a band sits in the band's folder, and every module of a folder in its band."""
    wrong = []
    for _, folder, groups, _ in BANDS:
        for module in (m for group in groups for m in group):
            home = module.rsplit(".", 1)[0] if "." in module else ""
            if home != folder and module not in ENTRY_POINTS and not (module == folder):
                wrong.append(f"{module} is in the {folder or 'top-level'} band")
    assert wrong == []


def layer_table() -> str:
    rows = [
        "| layer | folder | modules, lowest first (→: imports go down the arrows) | what lives there |",
        "|---|---|---|---|",
    ]
    for name, folder, groups, what in BANDS:
        cells = " → ".join(", ".join(f"`{m or 'amaml_lab'}`" for m in group) for group in groups)
        rows.append(f"| {name} | `{folder or 'amaml_lab'}/` | {cells} | {what} |")
    return "\n".join(rows) + "\n"


DOC = PACKAGE.parent / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- layers: made by tests/test_layers.py from BANDS -->\n", "<!-- /layers -->"


def test_the_architecture_table_is_made_from_the_layers():
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"docs/ARCHITECTURE.md lacks the layers' markers {BEGIN!r}"
    assert text.split(BEGIN, 1)[1].split(END, 1)[0] == layer_table(), (
        "docs/ARCHITECTURE.md's layer table is not BANDS': run python tests/test_layers.py"
    )


def closure(start: str, srcs: dict) -> set:
    """Every module ``start`` imports, directly or through others, lazy imports included."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        for target, _ in imports(name, srcs[name], set(srcs)):
            if target in srcs and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


READERS = [
    "studies.rundir",
    "studies.stopping",
    "studies.stats",
    "studies.committed",
    "studies.payoff",
    "studies.directions",
    "bench.compile_cost",
    "viz.payoff",
    "viz.directions",
]


@pytest.mark.parametrize("reader", READERS)
def test_a_reader_of_run_folders_imports_no_trainer(reader):
    srcs = sources()
    assert not closure(reader, srcs) & {"training.train", "training.runs", "commands"}


def test_the_widgets_import_no_training_code_when_imported():
    import subprocess
    import sys

    code = (
        "import sys, amaml_lab.widgets, amaml_lab.widgets.payoff, amaml_lab.studies.directions;"
        " print(sorted(m for m in sys.modules if m.startswith(('amaml_lab.training.', 'amaml_lab.commands'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['amaml_lab.training.config']"  # the settings a reader needs (config_of), no trainer


if __name__ == "__main__":  # write docs/ARCHITECTURE.md's table from BANDS
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + layer_table() + END + rest.split(END, 1)[1])
