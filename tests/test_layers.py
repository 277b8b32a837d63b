"""The house's walls (docs/ARCHITECTURE.md): every module imports only from layers below its own, lazy imports
included, so there is no circle; and no module imports another module's private (underscored) name."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amaml_lab"

# lowest first; a module may import from any module in an earlier group, never from its own group or a later one
LAYERS = [
    ("io", "progress", "distributed", "checks", "threads"),
    ("functional",),
    ("flow",),
    ("compiled",),
    ("metagrad.core",),
    ("metagrad.fields",),  # the continuous adjoint's field, eager and compiled
    ("metagrad.checkpointing", "metagrad.sweeps"),
    ("metagrad.adjoint", "metagrad.unrolled", "metagrad.first_order", "metagrad.implicit", "metagrad.forward"),
    ("metagrad.comln", "metagrad.backsolve"),
    ("metagrad.dispatch",),
    ("metagrad.batch", "metagrad.compare"),
    ("metagrad",),
    ("",),  # the package's own __init__: re-exports of flow, functional and metagrad
    ("models",),
    ("tasks.synthetic", "tasks.movielens", "tasks.jester", "tasks.omniglot"),
    ("tasks.domains", "tasks.examples"),
    ("tasks",),
    ("config",),
    ("builders",),
    ("train",),
    ("evaluate",),
    ("runs",),
    ("experiments",),
    ("committed", "explore", "horizon", "peers", "peers_jax", "diagnosis"),
    ("explore_backward", "explore_baselines", "side_by_side"),
    ("horizon_study", "exercises", "horizon_data"),
    ("directions",),  # issue 33's runs, read with the horizon study's records and pairing
    ("viz_style",),
    ("viz",),
    ("viz_study", "viz_horizon", "viz_directions"),
    ("viz_static",),  # the kernel-free explorers: built from viz_horizon's and viz_study's figures
    ("measure",),
    ("widgets.app",),
    ("widgets.surfaces", "widgets.methods"),
    ("widgets",),
    ("widgets_study",),
    ("bench.tables", "bench.suites", "bench.compile_cost"),
    ("bench",),
    ("cli",),
    ("__main__", "bench.__main__"),  # entry points: they only call cli
]
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
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
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
    return found


def violations(srcs: dict) -> list[str]:
    rank = {m: i for i, group in enumerate(LAYERS) for m in group}
    out = [f"{m}: not placed in a layer (add it to LAYERS and docs/ARCHITECTURE.md)" for m in srcs if m not in rank]
    for name, source in srcs.items():
        for target, imported in imports(name, source, set(srcs)):
            if target not in srcs:  # e.g. a relative import left one level short after a move into a package
                out.append(f"{name or 'amaml_lab'} imports amaml_lab.{target}, which is not a module of the package")
            if target in rank and name in rank and rank[target] >= rank[name]:
                out.append(f"{name or 'amaml_lab'} imports {target or 'amaml_lab'}"
                           f"{'.' + imported if imported else ''}: an upward or same-layer import")
            if imported.startswith("_") and not imported.startswith("__") and target != name \
                    and (name, target, imported) not in PRIVATE_EXCEPTIONS:
                out.append(f"{name} imports the private name {target}.{imported}")
    return out


def test_every_import_goes_down_and_no_private_name_crosses():
    assert violations(sources()) == []


@pytest.mark.parametrize("module,injected", [
    ("functional", "from .cli import main\n"),  # a circle: the engine reaching the command line
    ("flow", "def f():\n    from .metagrad import meta_gradient\n"),  # lazily, too
    ("widgets.app", "from ..measure import _heap_reader\n"),  # a private name
    ("widgets.methods", "def f():\n    from .measure import stream\n"),  # a module that is not there
    ("train", "from .train import Diverged\n"),  # itself: same layer
])
def test_an_injected_upward_import_is_caught(module, injected):
    srcs = sources()
    srcs[module] += "\n" + injected
    assert any(v.startswith(module) for v in violations(srcs)), injected


def test_every_module_is_placed_and_every_placed_module_exists():
    placed = {m for group in LAYERS for m in group}
    assert placed == set(sources())


MOST_LINES = {"module": 400, "function": 60}  # docs/ARCHITECTURE.md: short modules and functions


def sizes(srcs: dict) -> list[str]:
    """Every module over MOST_LINES["module"] lines and every function over MOST_LINES["function"]."""
    out = []
    for name, source in srcs.items():
        if source.count("\n") > MOST_LINES["module"]:
            out.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MOST_LINES["function"]:
                    out.append(f"{name}.{node.name}: {length} lines")
    return out


def test_modules_and_functions_are_short():
    assert sizes(sources()) == []


def test_a_long_module_or_function_is_caught():
    srcs = {name: source for name, source in sources().items() if name in ("flow", "checks")}
    srcs["flow"] += "\n" * 401
    srcs["checks"] += "\ndef long():\n" + "    x = 1\n" * 60
    assert sizes(srcs) == ["flow: " + str(srcs["flow"].count("\n")) + " lines", "checks.long: 61 lines"]
