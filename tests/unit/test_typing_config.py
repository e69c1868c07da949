"""The mypy settings for harness/ stay strict, and explicit Any stays inside the listed JSON/YAML modules.

mypy itself (``make lint``) enforces the settings; these tests keep the settings from being loosened or
going stale: every strict flag on for ``harness.*``, the exception list naming only modules that exist and
turning off nothing but ``disallow_any_explicit``, and no module outside that list importing ``Any``.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRICT = (
    "disallow_untyped_defs", "disallow_incomplete_defs", "disallow_any_generics", "disallow_untyped_calls",
    "disallow_subclassing_any", "disallow_untyped_decorators", "warn_return_any", "no_implicit_reexport",
    "strict_equality", "extra_checks", "disallow_any_explicit",
)


def _mypy() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def _override(module: str) -> dict:
    found = [o for o in _mypy()["overrides"] if o["module"] == module or (
        isinstance(o["module"], list) and module in o["module"])]
    assert len(found) == 1, f"expected one [[tool.mypy.overrides]] naming {module}, found {len(found)}"
    return found[0]


def _exceptions() -> list[str]:
    lists = [o["module"] for o in _mypy()["overrides"] if isinstance(o["module"], list)]
    assert len(lists) == 1
    return lists[0]


def _module_file(name: str) -> Path:
    parts = name.split(".")
    path = ROOT.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_harness_is_strict() -> None:
    harness = _override("harness.*")
    assert {flag: harness.get(flag) for flag in STRICT} == dict.fromkeys(STRICT, True)
    assert set(_mypy()["packages"]) >= {"harness", "emulator"}


def test_exception_list_turns_off_only_explicit_any_and_names_real_modules() -> None:
    names = _exceptions()
    exception = _override(names[0])
    assert {k: v for k, v in exception.items() if k != "module"} == {"disallow_any_explicit": False}
    assert names == sorted(set(names), key=names.index), "a module is listed twice"
    missing = [n for n in names if not n.startswith("harness.") or not _module_file(n).is_file()]
    assert missing == [], f"listed but not a harness module: {missing}"


def _imports_any(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("typing", "typing_extensions"):
            lines += [node.lineno for alias in node.names if alias.name == "Any"]
        elif isinstance(node, ast.Attribute) and node.attr == "Any" and isinstance(node.value, ast.Name) \
                and node.value.id in ("typing", "t"):
            lines.append(node.lineno)
    return lines


def _outside_the_list() -> list[Path]:
    allowed = {_module_file(n) for n in _exceptions()}
    return [p for p in sorted((ROOT / "harness").rglob("*.py")) if p not in allowed]


@pytest.mark.parametrize("path", _outside_the_list(), ids=lambda p: str(p.relative_to(ROOT)))
def test_explicit_any_only_in_listed_modules(path: Path) -> None:
    assert _imports_any(path) == [], f"{path.relative_to(ROOT)} imports Any; use object, a TypedDict or a Protocol"


def test_the_any_finder_finds_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import typing\nfrom typing import Any, cast\nx: typing.Any = 1\n")
    assert _imports_any(sample) == [2, 3]
