"""Exit codes CI can act on: 4 for a bad plan or a refused selection, 75 when the harness could not judge,
2 when interrupted (and the interrupted stage never reads as passed). 0 and 1 are asserted on the runs
tests/e2e/test_reports.py makes (a passing 2.8 -> 3.4 run, failing key-auth, shift and freeze runs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.ledger import STAGES
from tests.e2e.conftest import ROOT, PlanRun, interrupt_when, plan_env, run_plan, suites_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


def variant(tmp: Path, name: str, **changes: dict[str, object]) -> str:
    """The default plan under another name, with sections changed, its config path made absolute."""
    data = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    data["name"] = name
    data["config"]["source"] = str(ROOT / "plans/configs/sample.yaml")
    data["config"]["allowed_root"] = str(ROOT / "plans/configs")
    for section, values in changes.items():
        data[section].update(values)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_bad_plan_exits_4_and_writes_no_run_folder(module_tmp: Path) -> None:
    bad = module_tmp / "bad.yaml"
    bad.write_text((ROOT / "plans/default.yaml").read_text().replace("max_error_rate: 0.01", "max_error_rate: 7"))
    run = run_plan(module_tmp, str(bad))
    assert run.returncode == 4, run.output[-2000:]
    assert "gates.max_error_rate" in run.output
    assert not run.run_dir.exists()


def test_a_selection_of_a_plan_that_never_ran_exits_4_and_writes_no_run_folder(module_tmp: Path) -> None:
    plan = variant(module_tmp, "never-ran")
    reports = module_tmp / "reports-never-ran"
    run = run_plan(module_tmp, plan, "-k", "shift", "-o", f"kuh_reports_root={reports}")
    # the shared helper passes --run-dir; without a ledger there the selection is refused all the same
    assert run.returncode == 4, run.output[-2000:]
    assert "stage 'shift' cannot run" in run.output and "preflight (never run)" in run.output
    assert not run.run_dir.exists() and not reports.exists()


@pytest.fixture(scope="module")
def not_judged(module_tmp: Path) -> PlanRun:
    # a Y version the emulator cannot be (3.10 is well-formed, so the plan is accepted): Y never starts
    plan = variant(module_tmp, "cannot-judge", y={"version": "3.10.0", "provider": "process"})
    return run_plan(module_tmp, plan)


def test_a_node_that_cannot_start_exits_75_could_not_judge(not_judged: PlanRun) -> None:
    assert not_judged.returncode == 75, not_judged.output[-3000:]
    deploy = not_judged.verdict("deploy")
    assert deploy is not None and deploy["outcome"] == "failed" and deploy["cause"] == "not-judged"
    assert not_judged.summary["verdict"] == "not-judged"
    assert json.loads((not_judged.run_dir / "verdict.json").read_text())["exit_code"] == 75
    assert "verdict: COULD NOT JUDGE (failed stage: deploy), exit code 75" in not_judged.output
    # the remaining checks of the stage say they were not checked, without repeating the failure
    skipped = [line for line in not_judged.output.splitlines() if "not checked:" in line]
    assert skipped and not any("exited with code" in line for line in skipped)
    assert not_judged.leftovers() == []


@pytest.fixture(scope="module")
def interrupted(module_tmp: Path) -> PlanRun:
    return interrupt_when(module_tmp, variant(module_tmp, "ctrl-c"), "[kuh] step  25 % Y")


def test_ctrl_c_during_the_shift_exits_2_and_the_shift_never_reads_as_passed(interrupted: PlanRun) -> None:
    assert interrupted.returncode == 2, interrupted.output[-3000:]
    shift = interrupted.verdict("shift")
    assert shift is not None and shift["outcome"] == "interrupted" and shift["cause"] == "interrupted"
    assert "of 7 checks of shift had run" in shift["message"] or "checks of shift had run" in shift["message"]
    assert all(interrupted.verdict(s)["outcome"] == "passed" for s in STAGES[:STAGES.index("shift")])
    assert interrupted.verdict("decommission") is None
    assert interrupted.summary["verdict"] == "interrupted"
    assert "teardown: all traffic returned to X" in interrupted.output
    assert interrupted.leftovers() == []


def test_decommission_refuses_to_build_on_an_interrupted_shift(interrupted: PlanRun, module_tmp: Path) -> None:
    before = (interrupted.run_dir / "ledger.json").read_bytes()
    again = run_plan(module_tmp, interrupted.plan, "--stage", "decommission", run_dir=interrupted.run_dir)
    assert again.returncode == 4, again.output[-2000:]
    assert "shift (interrupted)" in again.output
    assert (interrupted.run_dir / "ledger.json").read_bytes() == before


CTRL_C_PLUGIN = '''
"""Ctrl-C delivered inside pytest's reporting hooks, at one check (a test-only plugin)."""
import os

import pytest

TARGET = os.environ["KUH_TEST_CTRL_C_AT"]
HOOK = os.environ["KUH_TEST_CTRL_C_HOOK"]

if HOOK == "logfinish":
    def pytest_runtest_logfinish(nodeid, location):
        if nodeid.endswith(TARGET):
            raise KeyboardInterrupt

if HOOK == "logreport":
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(report):
        if report.when == "teardown" and report.nodeid.endswith(TARGET):
            raise KeyboardInterrupt
'''


@pytest.mark.parametrize(("hook", "at"), [
    ("logfinish", "test_07_shift.py::test_shift_step[y=25%]"),
    ("logreport", "test_07_shift.py::test_y_ready"),  # the shift's last check: its verdict is due right then
], ids=["logfinish-mid-shift", "logreport-last-check-of-shift"])
def test_ctrl_c_inside_a_reporting_hook_never_records_a_pass(module_tmp: Path, hook: str, at: str) -> None:
    plugin_dir = module_tmp / f"plugin-{hook}"
    plugin_dir.mkdir()
    (plugin_dir / "kuh_ctrl_c.py").write_text(CTRL_C_PLUGIN)
    plan = variant(module_tmp, f"ctrl-c-{hook}")
    run_dir = module_tmp / f"ctrl-c-{hook}-run"
    env = {**plan_env(module_tmp / "work"), "PYTHONPATH": str(plugin_dir), "KUH_TEST_CTRL_C_HOOK": hook,
           "KUH_TEST_CTRL_C_AT": at}
    proc = subprocess.run(suites_command(plan, run_dir, "-p", "kuh_ctrl_c"), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    run = PlanRun(plan, proc.returncode, proc.stdout + proc.stderr, run_dir, module_tmp / "work")
    assert run.returncode == 2, run.output[-3000:]
    assert "INTERNALERROR" not in run.output
    shift = run.verdict("shift")
    assert shift is not None and shift["outcome"] == "interrupted", shift
    assert run.verdict("decommission") is None
    assert "teardown: all traffic returned to X" in run.output
    assert run.leftovers() == []
    again = run_plan(module_tmp, plan, "--stage", "decommission", run_dir=run_dir)
    assert again.returncode == 4 and "shift (interrupted)" in again.output
