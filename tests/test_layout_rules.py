"""The package's layout rules, read from the code: stages use each other's faces only, the shared
modules import no stage, no import loops (imports inside functions included), no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mammotools"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, names: frozenset[str] = frozenset()) -> set[str]:
    """Every mammotools module ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mammotools"):
            # "from package import submodule" imports the submodule (and runs the package's face)
            found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mammotools"))
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
NAMES = frozenset(MODULES)
STAGES = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_stages_use_each_others_faces_only() -> None:
    wrong = []
    for name, path in MODULES.items():
        own = stage_of(name)
        for target in imports(path, NAMES):
            other = stage_of(target)
            if other is not None and other != own and target != f"mammotools.{other}":
                wrong.append(f"{name} imports {target}: use mammotools.{other}")
    assert wrong == []


def test_shared_modules_import_no_stage() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if stage_of(name) is None and name not in ("mammotools.__main__",)
        for target in imports(path, NAMES)
        if stage_of(target) is not None and not (name == "mammotools.__init__")
    ]
    assert wrong == []


def test_no_import_loops() -> None:
    graph = {name: {t for t in imports(path, NAMES) if t in MODULES and t != name} for name, path in MODULES.items()}
    loops = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loops.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert loops == []


def test_no_module_over_500_lines() -> None:
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES}
    assert long == {}
