"""Every way of selecting checks goes through the ledger check, and a refused session writes nothing.

A fake run folder stands for an earlier run whose staging failed: its reports must stay byte-identical
whatever is asked of it (--stage, -k, file paths, node ids). --lf resumes it from staging. None of
these sessions starts a node: each is refused, or only collects (--collect-only writes nothing).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ledger import STAGES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def suites(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest suites/ ARGS`` (or ``pytest ARGS`` when they name suite files themselves)."""
    where = [] if any(a.startswith("suites/") for a in args) else ["suites/"]
    return subprocess.run([sys.executable, "-m", "pytest", *where, *args,
                           "-o", f"kuh_reports_root={tmp_path / 'reports'}", "-o", f"cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "KUH_WORK_ROOT": str(tmp_path / "work"),
                               "HOME": str(tmp_path)})


def earlier_run(folder: Path, failed: str = "staging") -> Path:
    """A run folder whose stages before ``failed`` passed, ``failed`` failed, the rest were skipped."""
    folder.mkdir(parents=True)
    at = STAGES.index(failed)
    stages = {}
    for i, name in enumerate(STAGES):
        outcome = "passed" if i < at else "failed" if i == at else "skipped"
        stages[name] = {"stage": name, "outcome": outcome, "started": 100.0 + i, "finished": 101.0 + i,
                        "message": f"{name} {outcome}", "figures": {}, "duration": 1.0}
    (folder / "ledger.json").write_text(json.dumps({"plan_name": "default-dbless", "plan_path": "plans/default.yaml",
                                                    "created": 100.0, "stages": stages, "facts": {}}))
    (folder / "junit.xml").write_text('<testsuites><testsuite tests="49" failures="1"/></testsuites>')
    for name in ("signoff.html", "summary.json", "report.html", "verdict.json"):
        (folder / name).write_text(f"the earlier run's {name}")
    (folder / "allure-results").mkdir()
    (folder / "allure-results" / "a-result.json").write_text('{"status": "failed"}')
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("select", [
    ("--stage", "shift"),
    ("--from-stage", "scale"),
    ("-k", "shift"),
    ("suites/test_07_shift.py",),
    ("suites/test_07_shift.py::test_splitter_in_front_of_x_and_y",),
], ids=["--stage", "--from-stage", "-k", "file", "node-id"])
def test_a_refused_selection_leaves_the_earlier_run_byte_identical(tmp_path: Path, select: tuple[str, ...]) -> None:
    folder = earlier_run(tmp_path / "run")
    before = snapshot(folder)
    out = suites(tmp_path, "--run-dir", str(folder), *select)
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]
    assert "cannot run" in out.stderr and "staging (failed)" in out.stderr, out.stderr
    assert "--from-stage staging" in out.stderr  # the next step names the command
    assert snapshot(folder) == before


def test_a_selection_of_a_plan_that_never_ran_is_refused_and_makes_no_folder(tmp_path: Path) -> None:
    out = suites(tmp_path, "-k", "shift")
    assert out.returncode == 4, out.stderr[-2000:]
    assert "no earlier run folder of plan 'default-dbless'" in out.stderr
    reports = tmp_path / "reports"
    assert not reports.exists() or list(reports.iterdir()) == []


def test_a_selection_with_a_gap_between_stages_is_refused(tmp_path: Path) -> None:
    out = suites(tmp_path, "-k", "preflight or shift")
    assert out.returncode == 4, out.stderr[-2000:]
    assert "runs stage 'decommission'" in out.stderr or "runs stage 'shift'" in out.stderr
    assert "not stage 'backup'" in out.stderr
    assert not (tmp_path / "reports").exists() or list((tmp_path / "reports").iterdir()) == []


def test_part_of_a_stage_cannot_open_the_way_for_a_later_one(tmp_path: Path) -> None:
    folder = earlier_run(tmp_path / "run", failed="scale")  # staging passed, scale failed
    out = suites(tmp_path, "--run-dir", str(folder), "--co", "-q",
                 "-k", "test_config_parity or test_remaining_y_nodes_ready")
    assert out.returncode == 4, out.stdout[-2000:] + out.stderr[-2000:]
    assert "only part of stage 'staging'" in out.stderr


def test_lf_resumes_the_newest_run_from_its_first_stage_that_did_not_pass(tmp_path: Path) -> None:
    folder = earlier_run(tmp_path / "reports" / "20261129T000000Z-abcdef-default-dbless")
    before = snapshot(folder)
    out = suites(tmp_path, "--lf", "--co", "-q")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    listed = [ln for ln in out.stdout.splitlines() if ln.startswith("suites/")]
    assert listed and listed[0].startswith("suites/test_05_staging.py::")
    assert not any(ln.startswith(("suites/test_01", "suites/test_04")) for ln in listed)
    assert any(ln.startswith("suites/test_08_decommission.py::") for ln in listed)
    assert snapshot(folder) == before  # --collect-only writes nothing


def test_lf_with_every_stage_passed_has_nothing_to_resume(tmp_path: Path) -> None:
    folder = earlier_run(tmp_path / "run", failed="decommission")
    ledger = json.loads((folder / "ledger.json").read_text())
    ledger["stages"]["decommission"]["outcome"] = "passed"
    (folder / "ledger.json").write_text(json.dumps(ledger))
    out = suites(tmp_path, "--lf", "--run-dir", str(folder))
    assert out.returncode == 4 and "nothing to resume" in out.stderr


def test_an_interrupted_stage_blocks_the_next_as_a_failure_does(tmp_path: Path) -> None:
    folder = earlier_run(tmp_path / "run", failed="shift")
    ledger = json.loads((folder / "ledger.json").read_text())
    ledger["stages"]["shift"].update(outcome="interrupted", cause="interrupted")
    (folder / "ledger.json").write_text(json.dumps(ledger))
    out = suites(tmp_path, "--stage", "decommission", "--run-dir", str(folder))
    assert out.returncode == 4 and "shift (interrupted)" in out.stderr


@pytest.mark.parametrize("flag", ["--ff", "--nf"])
def test_reordering_flags_are_refused(tmp_path: Path, flag: str) -> None:
    out = suites(tmp_path, flag)
    assert out.returncode == 4 and "the stages run in their order" in out.stderr


def test_lf_does_not_combine_with_stage(tmp_path: Path) -> None:
    out = suites(tmp_path, "--lf", "--stage", "shift")
    assert out.returncode == 4 and "do not combine it with --stage" in out.stderr


def test_help_lists_the_exit_codes_and_lf() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    text = " ".join(out.stdout.split())
    assert "75 could not judge" in text and "0 passed, 1 a check or gate failed, 2 interrupted" in text
    assert "--lf resumes the newest run of the plan from its first stage that did not pass" in text
