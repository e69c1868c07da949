"""plans/plan.schema.json is what the plan models generate, and every shipped plan points editors at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plan import SCHEMA_FILE, json_schema, load_plan, schema_text
from harness.registry import PROVIDER_CHOICES, SPLITTERS

PLANS = Path(__file__).resolve().parents[2] / "plans"
SHIPPED = sorted([*PLANS.glob("*.yaml"), *PLANS.glob("scenarios/*.yaml")])


def test_the_committed_schema_is_what_the_models_generate() -> None:
    committed = (PLANS / SCHEMA_FILE).read_text()
    assert committed == schema_text(), (
        "plans/plan.schema.json is stale: regenerate it with "
        "`python -c \"from harness.plan import schema_text; print(schema_text(), end='')\" > plans/plan.schema.json`")


def test_the_schema_refuses_unknown_keys_and_names_the_registries_choices() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in defs.values() if d.get("type") == "object")
    assert defs["ClusterPlan"]["properties"]["provider"]["enum"] == list(PROVIDER_CHOICES)
    assert defs["TrafficPlan"]["properties"]["splitter"]["enum"] == list(SPLITTERS)
    assert set(schema["required"]) == {"plan", "name", "x", "y"}
    assert "initial" in defs["YClusterPlan"]["properties"] and "initial" not in defs["ClusterPlan"]["properties"]
    assert defs["TrafficPlan"]["properties"]["steps"]["items"] == {"maximum": 100, "minimum": 1, "type": "integer",
                                                                  "description": "a whole percentage"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(PLANS)))
def test_every_shipped_plan_names_the_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix), first
    target = (path.parent / first[len(prefix):]).resolve()
    assert target == (PLANS / SCHEMA_FILE).resolve()
    json.loads(target.read_text())


@pytest.mark.parametrize("path", sorted(PLANS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_plans_load_without_warnings(path: Path) -> None:
    assert load_plan(path).warnings == ()
