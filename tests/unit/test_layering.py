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
