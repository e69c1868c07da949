"""RunSummary: JSON round-trip, validation of outcomes and times, errors that name the field."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from harness.errors import HarnessError
from harness.report.sample import sample_summary
from harness.summary import NodeInfo, RunSummary, StageResult, StepResult


@pytest.mark.parametrize("failed", [False, True], ids=["passed", "failed-with-rollback"])
def test_round_trip_is_lossless(failed: bool) -> None:
    summary = sample_summary(failed=failed)
    again = RunSummary.from_json(summary.to_json())
    assert again == summary
    assert again.to_json() == summary.to_json()


def test_json_uses_utc_z_times_and_plain_lists() -> None:
    data = json.loads(sample_summary().to_json())
    assert data["started"] == "2025-03-14T09:30:00Z"
    assert isinstance(data["steps"], list)
    assert data["steps"][0]["weight_y"] == 10
    assert data["schema"] == 1


def test_lists_become_tuples_and_other_zones_become_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    base = sample_summary()
    summary = replace(base, stages=list(base.stages), started=datetime(2025, 3, 14, 11, 30, tzinfo=plus2))
    assert isinstance(summary.stages, tuple)
    assert summary.started == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    assert summary.started.tzinfo == UTC


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="without a zone"):
        replace(sample_summary(), started=datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StageResult("shift", "broken"), "stage 'shift' outcome is 'broken'; expected one of passed"),
        (lambda: NodeInfo("n", "emulator://3.8.1", "z", "dp", "3.8.1"), "cluster is 'z'"),
        (lambda: replace(sample_summary(), verdict="ok"), "run verdict is 'ok'"),
        (lambda: replace(sample_summary(), failing_stage="nope"), "failing_stage is 'nope'"),
    ],
)
def test_bad_values_name_the_field_and_valid_values(build, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        build()


def test_step_checks_units() -> None:
    with pytest.raises(ValueError, match=r"fraction 0\.\.1"):
        StepResult(50, 10, 50.0, 0, 0, 0, 0, 1, 1, 2, 2, "pass")
    with pytest.raises(ValueError, match=r"percentage 0\.\.100"):
        StepResult(150, 10, 0.5, 0, 0, 0, 0, 1, 1, 2, 2, "pass")


def test_from_json_errors_are_harness_errors_with_a_next_step() -> None:
    with pytest.raises(HarnessError, match="not JSON") as info:
        RunSummary.from_json("{nope")
    assert info.value.hint
    data = json.loads(sample_summary().to_json())
    del data["x_version"]
    with pytest.raises(HarnessError, match="x_version"):
        RunSummary.from_dict(data)
    with pytest.raises(HarnessError, match="JSON list"):
        RunSummary.from_json("[]")


def test_summary_is_frozen_and_hashable() -> None:
    summary = sample_summary(failed=True)
    with pytest.raises(AttributeError):
        summary.verdict = "passed"  # type: ignore[misc]
    assert hash(summary) == hash(RunSummary.from_json(summary.to_json()))


def test_deck_lines_name_entities_in_words_and_always_end_with_the_summary() -> None:
    from harness.config_diff import Change, ConfigDiff
    from harness.deckdiff import deck_lines, split_path

    assert split_path("plugins['key-auth@route:orders'].config.key_names") == (
        "plugins", "key-auth@route:orders", "config.key_names")
    assert split_path("routes[\"it's\"]") == ("routes", "it's", "")
    result = ConfigDiff(
        added=(Change("added", "consumers['bob']", None, {"username": "bob"}),),
        removed=(Change("removed", "plugins['cors@global']", {"name": "cors"}, None),),
        changed=(Change("changed", "plugins['key-auth@route:orders'].config.hide_credentials", False, True),
                 Change("changed", "plugins['key-auth@route:orders'].config.key_names", ["apikey"], ["key"])),
        allowed=(Change("changed", "plugins['key-auth@service:a'].config.realm", None, "kong", "realm is new"),))
    lines = deck_lines(result)
    assert lines == (
        "creating consumer bob",
        "updating plugin key-auth (on route orders)",
        "  config.hide_credentials: false -> true",
        '  config.key_names: ["apikey"] -> ["key"]',
        "deleting plugin cors (global)",
        "allowed by the plan: plugin key-auth (on service a) config.realm (realm is new)",
        "Summary: Created 1 Updated 1 Deleted 1",
    )
    assert deck_lines(ConfigDiff()) == ("Summary: Created 0 Updated 0 Deleted 0",)
    many = ConfigDiff(added=tuple(Change("added", f"services['s{i}']", None, {}) for i in range(5)))
    assert deck_lines(many, limit=2)[-2] == "... and 3 more entities (the full diff is in evidence/)"


def test_a_mistyped_nested_field_is_named_with_its_path() -> None:
    data = json.loads(sample_summary().to_json())
    data["steps"][1]["requests"] = "many"
    with pytest.raises(HarnessError, match=r"steps\.1\.requests: Input should be a valid integer"):
        RunSummary.from_dict(data)
    data = json.loads(sample_summary().to_json())
    data["stages"][0]["outcome"] = "great"   # the record's own check still runs
    with pytest.raises(HarnessError, match="outcome is 'great'"):
        RunSummary.from_dict(data)
