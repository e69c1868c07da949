"""Every failure rehearsal fails in the right stage, with the right message, skips what follows,
exits non-zero, rolls traffic back to X where it had moved, and leaves nothing running."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.ledger import STAGES
from harness.report.redact import find_secrets
from tests.e2e.conftest import SAMPLE_KEYS, PlanRun, run_plan

# whole plans measure traffic: one worker runs them in turn with the other timing-sensitive tests
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]

# plan, the stage that must fail, what its message must say, whether traffic had moved (rollback)
SCENARIOS = [
    ("keyauth-regression", "staging", "good-key: status: X=200 | Y=401", False),
    ("route-missing", "staging", "behaviour difference: Y answers differently from X", False),
    ("dp-newer-than-cp", "deploy", "sync_status kong_version_incompatible", False),
    ("y-5xx", "shift", "gate failed: at", True),
    ("y-slow", "shift", "gate failed: at", True),
    ("y-crash", "shift", "gate failed: at", True),
    ("x-config-write", None, "config drift: X's configuration changed since preflight", False),
]


def assert_gated(run: PlanRun, failed: str) -> None:
    outcomes = run.outcomes()
    at = STAGES.index(failed)
    assert all(outcomes[s] == "passed" for s in STAGES[:at]), outcomes
    assert outcomes[failed] == "failed"
    for later in STAGES[at + 1:]:
        assert outcomes[later] == "skipped", outcomes
        assert run.verdict(later)["message"].startswith(f"gate closed: {failed} failed"), run.verdict(later)


@pytest.mark.parametrize(("name", "stage", "message", "rolled_back"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_failure_scenario(module_tmp: Path, name: str, stage: str | None, message: str, rolled_back: bool) -> None:
    run = run_plan(module_tmp, f"plans/scenarios/{name}.yaml")
    assert run.returncode == 1, run.output[-3000:]
    summary = run.summary
    failed = summary["failing_stage"]
    assert failed is not None
    if stage is not None:
        assert failed == stage, (failed, run.output[-2000:])
    assert_gated(run, failed)
    assert message in run.verdict(failed)["message"], run.verdict(failed)["message"]
    assert f"verdict: FAILED (failed stage: {failed})" in run.output
    page = (run.run_dir / "signoff.html").read_text()
    assert "FAILED" in page and failed in page
    # the reports of a failed run are as complete as a passed one's, and as clean of secrets
    failures = [c for c in run.junit().iter("testcase") if c.find("failure") is not None]
    assert failures and all(c.get("classname", "").startswith("suites.") for c in failures)
    assert any(json.loads(r.read_text())["status"] in ("failed", "broken")
               for r in (run.run_dir / "allure-results").glob("*-result.json"))
    assert (run.run_dir / "allure-report" / "index.html").exists()
    assert find_secrets(run.run_dir, SAMPLE_KEYS) == []
    assert not [key for key in SAMPLE_KEYS if key in run.output]  # nor in the terminal output of a failure
    if rolled_back:
        rollback = summary["rollback"]
        assert rollback is not None, "traffic had moved but no rollback was recorded"
        assert rollback["y_hits_after"] == 0
        assert rollback["requests_after"] >= 50
        assert rollback["seconds_to_proof"] <= 1.0, rollback
        assert "ROLLBACK: all traffic on X" in run.output
        assert any(step["outcome"] != "pass" for step in summary["steps"])
    else:
        assert summary["rollback"] is None
    if name == "y-crash":   # the gate names the crashed node, how it ended, and which node answered what
        shift = run.verdict("shift")["message"]
        assert re.search(r"y\d: y\d exited with code 70", shift), shift
        assert re.search(r"Y: y\d answered \d+ of \d+ wrongly", shift), shift
    assert run.leftovers() == []
