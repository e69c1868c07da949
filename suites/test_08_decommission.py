"""Stage 8 of 8 — decommission: X drained, no X traffic over the soak window, X retired.

Runbook step 9 (decommission X). The invariants that read X run first here, while X still answers;
then the splitter drains every X node, the probe verifies that nothing reaches X for the soak
window, and the X nodes the harness started are stopped. Existing X nodes are left running: the
report says they may now be retired.
"""

import pytest

from harness import Plan, RunContext, checks

pytestmark = pytest.mark.stage("decommission", retires_x=True)


def test_x_drained(run: RunContext) -> None:
    traffic = run.require_traffic()
    traffic.drain(run.clusters.x_nodes)
    run.log("decommission: X drained (0 % weight, drain state)")
    assert traffic.splitter.weights() == (0, 100), "the splitter still sends traffic to X"


def test_no_x_traffic_over_soak_window(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    result = checks.decommission.soak(run.require_traffic(), plan.traffic.soak_seconds)
    evidence.attach_csv("soak window", result.window_csv)
    stage_figures("soak", result.summary_line())
    run.record.soak = {"requests": result.requests, "x_hits": result.x_hits, "errors": result.errors}
    assert result.requests > 0, "the probe sent nothing during the soak window: cannot prove X is idle"
    assert result.x_hits == 0, f"{result.x_hits} requests still reached X during the soak window"
    assert result.errors == 0, f"{result.errors} failed requests on Y alone during the soak window"


def test_x_retired(run: RunContext, stage_figures) -> None:
    retired = checks.decommission.retire_x(run.clusters)
    stage_figures("x_retired", retired.summary_line())
    assert not retired.still_running, f"X nodes the harness started are still running: {retired.still_running}"
