"""Run folders: one owner of their names; unique per start; found again by plan for a resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.ledger import Ledger, Verdict
from harness.rundir import RunDir, create_run_dir, latest_run_dir, plan_of, run_dir_name, run_id_of

WHEN = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def with_ledger(run: RunDir | Path, plan: str) -> Path:
    root = run.root if isinstance(run, RunDir) else run
    Ledger(root, plan_name=plan, plan_path=f"{plan}.yaml").record(Verdict("preflight", "passed", 1.0, 2.0))
    return root


def test_name_is_utc_time_a_random_part_then_the_plan_name() -> None:
    local = datetime(2025, 3, 14, 11, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_dir_name("default", local, token="abc123") == "20250314T093005Z-abc123-default"
    assert plan_of("20250314T093005Z-abc123-default-dbless") == "default-dbless"
    names = {run_dir_name("default", WHEN) for _ in range(50)}
    assert len(names) == 50, "two runs started in the same second get different folders (and run ids)"


@pytest.mark.parametrize("bad", ["../../../../tmp/escaped", "My Plan", "a/b", "", ".hidden", "x" * 65, "ä"])
def test_a_name_that_is_not_a_safe_folder_name_is_refused_before_anything_is_made(tmp_path: Path, bad: str) -> None:
    with pytest.raises(HarnessError, match="cannot name a run folder"):
        create_run_dir(tmp_path / "runs", bad)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["runs"])


def test_folders_made_in_the_same_second_never_collide_and_sort_by_time(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "default", WHEN)
    second = create_run_dir(tmp_path, "default", WHEN)
    later = create_run_dir(tmp_path, "default", WHEN + timedelta(seconds=1))
    assert len({first.root, second.root, later.root}) == 3
    assert all(r.root.is_dir() for r in (first, second, later))
    assert max(p.name for p in tmp_path.iterdir()) == later.root.name
    assert first.signoff == first.root / "signoff.html" and not first.evidence.exists()
    assert first.run_id == first.root.name and second.run_id != first.run_id


def test_a_folder_made_by_create_run_dir_is_the_one_a_resume_finds(tmp_path: Path) -> None:
    older = with_ledger(create_run_dir(tmp_path, "default-dbless", WHEN), "default-dbless")
    newer = with_ledger(create_run_dir(tmp_path, "default-dbless", WHEN + timedelta(hours=1)), "default-dbless")
    create_run_dir(tmp_path, "default-dbless", WHEN + timedelta(hours=2))  # crashed before any verdict
    with_ledger(create_run_dir(tmp_path, "hybrid", WHEN + timedelta(hours=3)), "hybrid")
    (tmp_path / "20250601T000000Z-abcdef-default-dbless.txt").write_text("a file, not a run folder")
    assert latest_run_dir(tmp_path, "default-dbless") == newer != older


def test_no_runs_root_means_no_run(tmp_path: Path) -> None:
    assert latest_run_dir(tmp_path / "absent", "default-dbless") is None
    assert latest_run_dir(tmp_path, "default-dbless") is None


def test_a_plan_whose_name_ends_another_plans_name_is_not_taken_for_it(tmp_path: Path) -> None:
    own = with_ledger(create_run_dir(tmp_path, "crash", WHEN), "crash")
    theirs = with_ledger(create_run_dir(tmp_path, "y-crash", WHEN + timedelta(days=1)), "y-crash")
    assert latest_run_dir(tmp_path, "crash") == own
    assert latest_run_dir(tmp_path, "y-crash") == theirs


def test_folders_not_made_here_are_ignored(tmp_path: Path) -> None:
    for name in ("20250101T000000Z-default", "20250101T000000Z.2-default", "notes-abcdef-default"):
        with_ledger(tmp_path / name, "default")
    assert latest_run_dir(tmp_path, "default") is None


def test_run_id_is_the_folder_name_made_safe() -> None:
    assert run_id_of(Path("/r/20250314T093005Z-abc123-default")) == "20250314T093005Z-abc123-default"
    assert run_id_of(Path("/r/odd name!")) == "odd-name-"
