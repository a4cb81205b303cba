"""The package layout: imports point one way, from the command line inward; no circle; small modules.

Read from the source (every import statement, also those inside functions), so a lazy import that
breaks the direction is caught as well as a module-level one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "eyesim"
# Each part of the package, from the command line inward; a part may import only parts of a lower tier.
TIERS = {
    "__main__": 10, "cli": 9, "report": 8, "sweep": 7, "prune": 7, "estimator": 6, "result": 5, "cost": 4,
    "mapping": 3, "hardware": 2, "workload": 1, "dataflow": 1, "yamlio": 1, "errors": 0,
}
# Optional or heavy packages, and the modules that may import each (inside a function, when used).
OPTIONAL = {"matplotlib": "eyesim.report.plot", "torch": "eyesim.prune.finetune eyesim.workload.torch_export",
            "dask": "eyesim.sweep.runners",
            "pyarrow": "eyesim.sweep.output"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import statement of module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from eyesim import dataflow`` imports the module eyesim.dataflow
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            found += [(target, id(node) in top) for target in subs or [node.module]]
    return found


def part(name: str) -> str:
    return name.split(".")[1]


def eyesim_edges() -> dict[str, set[str]]:
    """Module -> the eyesim modules it imports (the package's lazy API table in eyesim/__init__.py aside)."""
    return {name: {target for target, _ in imports(name) if target in MODULES and target != name}
            for name in MODULES if name != "eyesim"}


def test_every_part_has_a_tier():
    assert {part(name) for name in MODULES if name != "eyesim"} == set(TIERS)


def test_imports_point_inward():
    wrong = [f"{src} imports {dst}" for src, targets in eyesim_edges().items() for dst in targets
             if part(src) != part(dst) and TIERS[part(src)] <= TIERS[part(dst)]]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    edges = eyesim_edges()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges.get(name, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[name] = 2
        path.pop()
        return None

    for name in sorted(edges):
        circle = visit(name) if name not in state else None
        assert circle is None, " -> ".join(circle)


def test_kernels_import_nothing_of_the_rest():
    """The kernels and their loaders import NumPy, Numba, the standard library and eyesim's error type only."""
    for name in MODULES:
        if name.startswith("eyesim.dataflow"):
            others = [target for target, _ in imports(name) if target.split(".")[0] not in ("numpy", "numba")
                      and target.split(".")[0] not in sys.stdlib_module_names and target != "eyesim.errors"
                      and not target.startswith("eyesim.dataflow")]
            assert not others, f"{name} imports {others}"


@pytest.mark.parametrize("package", sorted(OPTIONAL))
def test_optional_packages_are_imported_only_where_used(package):
    users = {(name, top) for name in MODULES for target, top in imports(name) if target.split(".")[0] == package}
    assert users == {(user, False) for user in OPTIONAL[package].split()}


def test_modules_are_small_and_say_their_job():
    for path in MODULES.values():
        assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path} is over {MAX_LINES} lines"
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{path} has no docstring"


def test_design_map_names_every_part():
    design = (ROOT / "DESIGN.md").read_text()
    where = design[design.index("## Where things are"):]
    for name in sorted({part(n) for n in MODULES if n != "eyesim"} - {"__main__"}):
        shown = f"eyesim/{name}/" if (PACKAGE / name).is_dir() else f"eyesim/{name}.py"
        assert f"`{shown}`" in where, f"DESIGN.md's map does not name {shown}"
