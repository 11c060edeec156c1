"""The house's floor plan, read from the source: the chat core and the model lab (`plugin.models`) in their own
rooms, one bridge between them, and no arrow back up.

Imports are read from the AST of every module (those inside functions and under TYPE_CHECKING included), so a
lazy import breaks the plan as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = "plugin.models"

# The core reaches the lab here only. serving.py is the bridge (a trained item-ID model served by the
# recommender); cli.py is the command line, the house's front door, which loads the lab's commands
# (`train`, `evaluate`) only when one of them is asked for.
CORE_INTO_LAB = {"plugin.serving", "plugin.cli"}
# What the lab may use of the core: the error tree, atomic saves, the event format and log it reads sessions
# from, and the STAMP maths it shares with the plugin. Never the pipeline (recommender, index, encoder, ...).
LAB_USES_OF_CORE = {
    "plugin",
    "plugin.errors",
    "plugin.atomic",
    "plugin.events",
    "plugin.event_log",
    "plugin.stamp",
    "plugin.arrays",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package.replace(".", "/")).rglob("*.py"))}


def _load_time(statements: list[ast.stmt]) -> list[ast.stmt]:
    """The import statements run when the module is imported: module level, not under TYPE_CHECKING, not
    inside a function or class body."""
    out: list[ast.stmt] = []
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                out += _load_time(node.body) + _load_time(node.orelse)
        elif isinstance(node, ast.Try):
            out += _load_time(node.body) + _load_time(node.orelse) + _load_time(node.finalbody)
            for handler in node.handlers:
                out += _load_time(handler.body)
    return out


def imported(name: str, path: Path, *, load_time_only: bool = False) -> set[str]:
    """The modules of this repository's `plugin` package that `path` imports (`from . import x` counts as
    plugin.x when x is a module, else as the package); every import, or only those run at import time."""
    known = _modules("plugin")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in _load_time(tree.body) if load_time_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            targets = subs if len(subs) == len(node.names) else [module, *subs]
        else:
            continue
        out.update(t for t in targets if t.split(".")[0] == "plugin" and t != name)
    return out


def _in_lab(module: str) -> bool:
    return module == LAB or module.startswith(LAB + ".")


def test_the_reader_sees_relative_lazy_and_absolute_imports(tmp_path):
    # the checks below pass vacuously if the reader misses imports: pin that it finds the ones we know of
    assert "plugin.models.base" in imported("plugin.serving", ROOT / "plugin/serving.py")
    assert "plugin.models.cli" in imported("plugin.cli", ROOT / "plugin/cli.py")  # inside a function
    assert "plugin.explain" in imported("plugin.recommender", ROOT / "plugin/recommender.py")  # from . import x
    assert {"plugin.errors", "plugin.models.data"} <= imported("plugin.models.base", ROOT / "plugin/models/base.py")
    assert "plugin.models.metrics" in imported("tests.test_metrics", ROOT / "tests/test_metrics.py")
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "try:\n    from . import events\nexcept ImportError:\n    events = None\n"
        "if TYPE_CHECKING:\n    from .recommender import SessionRecommender\n"
        "def f():\n    import plugin.index\n"
    )
    assert imported("plugin.mod", source) == {"plugin.events", "plugin.recommender", "plugin.index"}
    assert imported("plugin.mod", source, load_time_only=True) == {"plugin.events"}


def test_the_core_reaches_the_lab_only_through_its_bridge():
    core = {m: p for m, p in _modules("plugin").items() if not _in_lab(m)}
    assert "plugin.recommender" in core and "plugin.models.data" not in core
    crossing = {m: sorted(filter(_in_lab, imported(m, p))) for m, p in core.items()}
    assert {m for m, lab in crossing.items() if lab} <= CORE_INTO_LAB, crossing


def test_the_lab_uses_only_core_leaves_and_never_the_pipeline():
    lab = {m: p for m, p in _modules("plugin").items() if _in_lab(m)}
    for module in ("data", "training", "evaluation", "metrics", "precision", "device", "walks", "base", "stamp"):
        assert f"{LAB}.{module}" in lab  # the lab's rooms: models, their data, training and evaluation
    uses = {
        m: sorted(t for t in imported(m, p) if not _in_lab(t) and t not in LAB_USES_OF_CORE) for m, p in lab.items()
    }
    assert not any(uses.values()), uses


def test_adapters_use_the_core_only():
    # the web and LangChain layers serve the plugin: they never load the lab, nor the command line that loads
    # them by entry point (the demo site once imported plugin.cli back: a cycle)
    for name, path in _modules("adapters").items():
        bad = sorted(t for t in imported(name, path) if _in_lab(t) or t == "plugin.cli")
        assert not bad, (name, bad)


def test_the_import_time_graph_has_no_cycle():
    # a cycle at import time works or breaks by the order modules happen to be imported in; the few arrows back
    # (type hints, a loader that builds on the module it is called from) stay under TYPE_CHECKING or in functions
    graph = {m: imported(m, p, load_time_only=True) for m, p in _modules("plugin").items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module) :], module))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
    assert len(done) == len(graph) > 40
