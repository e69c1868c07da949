"""Layering rules held by a test: harness/ never imports pytest, and harness and emulator share no code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            top = name.split(".")[0]
            if top in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_scanner_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom _pytest.fixtures import x\ndef f():\n    import pytest\n")
    assert imported_modules(sample) == {"os", "_pytest.fixtures", "pytest"}


def test_harness_imports_nothing_from_pytest() -> None:
    assert list((ROOT / "harness").rglob("*.py")), "harness/ has no modules?"
    assert offenders("harness", ("pytest", "_pytest", "pluggy", "fixtures", "suites")) == []


def test_harness_and_emulator_share_no_code() -> None:
    assert offenders("harness", ("emulator",)) == []
    if (ROOT / "emulator").is_dir():
        assert offenders("emulator", ("harness",)) == []


# --- layers that point one way, and no import cycle -----------------------------------------------

SUBPACKAGES = tuple(sorted(p.parent.name for p in (ROOT / "harness").glob("*/__init__.py")))
UPPER = ("run", "checks")     # the run context and the stage checks: built on everything below


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def harness_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "harness").rglob("*.py"))}


def harness_edges(path: Path, known: set[str]) -> set[str]:
    """The harness modules a file imports, TYPE_CHECKING and function-level imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                out.add(child if child in known else node.module)
    return {m for m in out if m in known and m != "harness"}


def import_graph() -> dict[str, set[str]]:
    modules = harness_modules()
    known = set(modules)
    return {name: harness_edges(path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layers_are_what_architecture_says() -> None:
    assert {"nodes", "traffic", "report", "run", "checks"} <= set(SUBPACKAGES)


def test_no_import_cycle_in_harness() -> None:
    graph = import_graph()
    assert "harness.run.context" in graph and "harness.checks.staging" in graph
    assert find_cycle(graph) is None


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in SUBPACKAGES):
        return parts[1]
    return "core"


def test_core_modules_import_no_subpackage_and_subpackages_no_upper_layer() -> None:
    wrong = []
    for module, edges in import_graph().items():
        if module == "harness":
            continue
        layer = layer_of(module)
        for target in edges:
            target_layer = layer_of(target)
            if layer == "core" and target_layer != "core":
                wrong.append(f"{module} (core) imports {target}")
            if layer not in ("core", *UPPER) and target_layer in UPPER:
                wrong.append(f"{module} ({layer}) imports {target}")
    assert wrong == []


def test_no_module_over_500_lines_unless_architecture_says_why() -> None:
    allowed = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    long = [str(p.relative_to(ROOT)) for p in (ROOT / "harness").rglob("*.py")
            if len(p.read_text(encoding="utf-8").splitlines()) > 500]
    assert [p for p in long if f"`{p}`" not in allowed] == []
    context = ROOT / "harness" / "run" / "context.py"
    assert len(context.read_text(encoding="utf-8").splitlines()) < 250
