"""The public surface: ``harness.__all__`` is sorted and complete, and the suites use nothing else."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / "suites").glob("*.py"))
# what a suite may import besides the standard library: pytest, the harness's top level, and the
# invariants module that every stage file re-exports
ALLOWED = {"pytest", "harness", "invariants"}


def ruff_order(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions, each alphabetical (ruff RUF022's isort-style order)."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_sorted_without_duplicates() -> None:
    assert harness.__all__ == sorted(harness.__all__, key=ruff_order)
    assert len(set(harness.__all__)) == len(harness.__all__)


def test_every_exported_name_is_importable() -> None:
    missing = [n for n in harness.__all__ if not hasattr(harness, n)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from harness import *", namespace)  # the star import is what __all__ governs
    assert set(harness.__all__) <= set(namespace)


def test_every_public_name_of_the_package_is_exported() -> None:
    public = {n for n, v in vars(harness).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public - set(harness.__all__) == set()


def imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in a file, nested ones included; relative ones as '.'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.append((node.lineno, module, tuple(a.name for a in node.names)))
    return found


def offences(path: Path, root: Path = ROOT) -> list[str]:
    out = []
    for line, module, names in imports(path):
        where = f"{path.relative_to(root)}:{line}"
        top = module.split(".")[0]
        if module.startswith("."):
            out.append(f"{where}: relative import {module}")
        elif module.startswith("harness."):
            out.append(f"{where}: imports {module}; import from `harness` (add the name to harness.__all__)")
        elif top not in ALLOWED and top not in sys.stdlib_module_names:
            out.append(f"{where}: imports {module}; suites import only from harness")
        elif module == "harness":
            out += [f"{where}: harness.{n} is not in harness.__all__" for n in names
                    if n not in harness.__all__]
    return out


def test_the_scanner_sees_what_suites_must_not_do(tmp_path: Path) -> None:
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "import os\nimport pytest\nfrom harness import Ledger, _private\nfrom harness.ledger import STAGES\n"
        "from invariants import test_y_ready\nfrom fixtures.options import x\nfrom . import y\n"
        "def f():\n    import httpx\n"
    )
    rel = [o.split(": ", 1)[1] for o in offences(bad, tmp_path)]
    assert rel == [
        "harness._private is not in harness.__all__",
        "imports harness.ledger; import from `harness` (add the name to harness.__all__)",
        "imports fixtures.options; suites import only from harness",
        "relative import .",
        "imports httpx; suites import only from harness",
    ]


def test_suites_import_only_from_harness() -> None:
    assert [p.name for p in SUITES if p.name.startswith("test_")], "no suite files found"
    assert [o for p in SUITES for o in offences(p)] == []


def test_suites_use_the_package_import() -> None:
    # every suite reaches the library through `from harness import ...`, none through a side door
    users = [p.name for p in SUITES if any(m == "harness" for _, m, _ in imports(p))]
    assert len(users) == len(SUITES)


def test_every_exported_name_has_one_owner_module() -> None:
    owners = vars(harness)["_OWNER"]
    assert set(owners) == set(harness.__all__)
    for name, module in owners.items():
        assert module.startswith("harness."), name


def test_importing_one_module_of_harness_loads_neither_scipy_nor_the_rest() -> None:
    import subprocess

    code = "import sys, harness.supervisor, harness.model; print(sorted(m for m in ('scipy', 'matplotlib', " \
           "'harness.checks', 'harness.run.context') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", "the traffic supervisor must start fast: it imports only what it needs"
