"""The package's architecture, enforced: which part may import which, no import circles, small modules.

The parts and their order are described in labrunner/__init__.py and the README's architecture section.
"""
import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1]

# What each part may import, besides itself. Data flows config -> build -> machine -> run -> analysis,
# but analysis is pure (text in, reports out), so the run imports it, not the other way round.
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(),
    "process": {"errors"},
    "cache": {"errors"},
    "config": {"errors"},
    "analysis": {"errors", "process"},
    "build": {"errors", "process", "cache", "config"},
    "machine": {"errors", "process", "cache", "config", "build"},
    "run": {"errors", "process", "cache", "config", "build", "machine", "analysis"},
    "lab": {"errors", "process", "cache", "config", "build", "machine", "run", "analysis"},
    "report": {"errors", "process", "cache", "config", "build", "machine", "run", "analysis", "lab"},
    "cli": {"errors", "process", "cache", "config", "build", "machine", "run", "analysis", "lab", "report",
            "__init__"},
    "__init__": set(),
}
MAX_LINES = 400


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] != "tests":
            yield path, ".".join(("labrunner", *rel.with_suffix("").parts)).removesuffix(".__init__")


def _imports(path: Path, module: str) -> Set[str]:
    """The labrunner modules PATH imports, resolved to dotted names."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != "labrunner":
                continue
            for alias in node.names:  # "from . import x" imports a module x when there is one
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "labrunner"}
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else "__init__"


GRAPH = {module: _imports(path, module) for path, module in _modules()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_parts_import_only_what_is_below_them(module):
    part = _part(module)
    assert part in ALLOWED, f"{module}: a new part; add it to ALLOWED and to the README's architecture"
    wrong = {m for m in GRAPH[module] if _part(m) != part and _part(m) not in ALLOWED[part]}
    assert not wrong, f"{module} ({part}) may not import {sorted(wrong)}"


def test_no_import_circles():
    def visit(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        for dep in GRAPH.get(module, ()):
            # a package's __init__ re-exporting its own modules is not a circle
            if dep != module and not module.startswith(dep + "."):
                if cycle := visit(dep, path + [module]):
                    return cycle
        return None
    for module in GRAPH:
        cycle = visit(module, [])
        assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("path", [p for p, _ in _modules()], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small_and_say_what_they_own(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name} has grown past {MAX_LINES} lines: split it"
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no docstring saying what it owns"
