"""The ledger resumes a run after a fixed problem, refuses to skip a failed stage, and Ctrl-C during
the shift leaves all traffic on X with nothing left running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.ledger import STAGES
from tests.e2e.conftest import ROOT, interrupt_when, run_plan

# whole plans measure traffic: one worker runs them in turn with the other timing-sensitive tests
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


def test_resume_shift_after_a_fix_without_redoing_earlier_stages(module_tmp: Path) -> None:
    first = run_plan(module_tmp, "plans/scenarios/y-5xx.yaml")
    assert first.returncode == 1 and first.summary["failing_stage"] == "shift"
    before = {s: first.verdict(s) for s in STAGES[:6]}
    # the fix: Y no longer answers 5xx (same plan name, so the same run folder resumes)
    fixed = yaml.safe_load((ROOT / "plans/scenarios/y-5xx.yaml").read_text())
    del fixed["y"]["faults"]
    fixed["config"]["source"] = str(ROOT / "plans/configs/sample.yaml")
    fixed["config"]["allowed_root"] = str(ROOT / "plans/configs")
    fixed_path = module_tmp / "y-5xx-fixed.yaml"
    fixed_path.write_text(yaml.safe_dump(fixed))

    second = run_plan(module_tmp, str(fixed_path), "--from-stage", "shift", run_dir=first.run_dir)
    assert second.returncode == 0, second.output[-3000:]
    assert second.outcomes() == {s: "passed" for s in STAGES}
    assert {s: second.verdict(s) for s in STAGES[:6]} == before  # earlier verdicts untouched, not re-run
    assert "test_01_preflight" not in second.output and "deselected" in second.output
    assert second.leftovers() == []


def test_stage_without_a_passed_staging_verdict_is_refused(module_tmp: Path) -> None:
    failed = run_plan(module_tmp, "plans/scenarios/keyauth-regression.yaml")
    assert failed.summary["failing_stage"] == "staging"
    again = run_plan(module_tmp, "plans/scenarios/keyauth-regression.yaml", "--stage", "shift",
                     run_dir=failed.run_dir)
    assert again.returncode == 4, again.output[-2000:]  # pytest's usage error: nothing was started
    assert "stage 'shift' cannot run" in again.output
    assert "staging (failed)" in again.output and "scale (skipped)" in again.output
    assert json.loads((failed.run_dir / "ledger.json").read_text())["stages"]["shift"]["outcome"] == "skipped"


def test_ctrl_c_during_the_shift_returns_traffic_to_x_and_stops_everything(module_tmp: Path) -> None:
    run = interrupt_when(module_tmp, "plans/default.yaml", "[kuh] step  25 % Y")
    assert run.returncode == 2, run.output[-3000:]  # pytest: interrupted
    assert "teardown: all traffic returned to X" in run.output
    assert run.verdict("shift")["outcome"] == "interrupted"
    assert "interrupted" in run.verdict("shift")["message"]
    assert run.leftovers() == []
