"""One registry per kind of name: the plan, the CLI and the factories read the same tables."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import fixtures.options as options
from harness.errors import PlanError
from harness.plan import parse_plan
from harness.registry import AUTO, PROVIDER_CHOICES, PROVIDERS, SPLITTERS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "plans" / "default.yaml").read_text()


def plan_text(old: str, new: str) -> str:
    """The default plan with one line changed (and its config named by an absolute path)."""
    assert old in DEFAULT, old
    return DEFAULT.replace(old, new, 1).replace("configs/sample.yaml", str(ROOT / "plans/configs/sample.yaml"))


@pytest.mark.parametrize("table", [PROVIDERS, SPLITTERS])
def test_every_registered_name_resolves_to_a_class(table: dict[str, str]) -> None:
    for name, target in table.items():
        module, _, cls = target.partition(":")
        assert isinstance(getattr(importlib.import_module(module), cls), type), name


def test_auto_is_an_alias_resolved_before_the_registry() -> None:
    assert AUTO not in PROVIDERS and (AUTO, *PROVIDERS) == PROVIDER_CHOICES


@pytest.mark.parametrize("name", [n for n in PROVIDER_CHOICES if n != "existing"])  # existing needs nodes
def test_the_plan_accepts_every_registered_provider(name: str) -> None:
    assert parse_plan(plan_text("  provider: auto", f"  provider: {name}"), ROOT / "plans").y.provider == name


@pytest.mark.parametrize("name", [n for n in SPLITTERS if n != "command"])  # command needs traffic.command
def test_the_plan_accepts_every_registered_splitter(name: str) -> None:
    plan = parse_plan(plan_text("  splitter: haproxy", f"  splitter: {name}"), ROOT / "plans")
    assert plan.traffic.splitter == name


@pytest.mark.parametrize(("old", "new", "valid"), [
    ("  provider: auto", "  provider: kubernetes", PROVIDER_CHOICES),
    ("  splitter: haproxy", "  splitter: envoy", tuple(SPLITTERS)),
])
def test_unregistered_names_are_refused_naming_the_registered_ones(old: str, new: str,
                                                                   valid: tuple[str, ...]) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(plan_text(old, new), ROOT / "plans")
    assert all(n in str(info.value) for n in valid)


def test_the_cli_choices_are_the_registry() -> None:
    assert not hasattr(options, "PROVIDERS"), "the CLI keeps no list of its own"
    for name in PROVIDER_CHOICES:
        assert options._check_provider(name, "--y-provider") == name
    with pytest.raises(pytest.UsageError, match="valid: " + ", ".join(PROVIDER_CHOICES)):
        options._check_provider("kubernetes", "--y-provider")
