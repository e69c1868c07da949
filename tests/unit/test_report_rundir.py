"""Run folder naming: sortable UTC time then a path-safe plan name; never reused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from harness.report.rundir import new_run_dir, run_dir_name


def test_name_is_utc_time_then_safe_plan_name() -> None:
    local = datetime(2025, 3, 14, 11, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_dir_name("default", local) == "20250314T093005Z-default"
    assert run_dir_name("../my plan/ä", local) == "20250314T093005Z-my-plan"


def test_new_run_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    when = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    first = new_run_dir(tmp_path, "default", when)
    second = new_run_dir(tmp_path, "default", when)
    assert first.root.name == "20250314T093000Z-default"
    assert second.root.name == "20250314T093000Z-default-2"
    assert first.signoff == first.root / "signoff.html"
    assert first.allure_results == first.root / "allure-results"
    assert first.root.is_dir() and not first.evidence.exists()
