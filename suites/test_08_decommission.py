"""Stage 8 of 8 — decommission: X drained, no X traffic over the soak window, X retired.

Runbook step 9 (decommission X). The invariants run first here, while X still answers; then the
splitter drains every X node, the probe verifies that nothing reaches X for the soak window, and
the X nodes the harness started are stopped. Existing X nodes are left running: the report says
they may now be retired.
"""

import pytest
from invariants import test_x_config_unchanged, test_x_never_written  # noqa: F401  (checked while X runs)

from harness import Plan, UpgradeEnvironment

pytestmark = pytest.mark.stage("decommission")


def test_x_drained(upgrade: UpgradeEnvironment) -> None:
    traffic = upgrade.traffic()
    traffic.drain_x()
    assert traffic.splitter.weights() == (0, 100), "the splitter still sends traffic to X"


def test_no_x_traffic_over_soak_window(upgrade: UpgradeEnvironment, plan: Plan, evidence, stage_figures) -> None:
    soak = upgrade.traffic().soak(plan.traffic.soak_seconds)
    evidence.attach_csv("soak window", soak.window_csv)
    stage_figures("soak", soak.summary_line())
    assert soak.requests > 0, "the probe sent nothing during the soak window: cannot prove X is idle"
    assert soak.x_hits == 0, f"{soak.x_hits} requests still reached X during the soak window"
    assert soak.errors == 0, f"{soak.errors} failed requests on Y alone during the soak window"


def test_x_retired(upgrade: UpgradeEnvironment, stage_figures) -> None:
    retired = upgrade.retire_x()
    stage_figures("x_retired", retired.summary_line())
    assert not retired.still_running, f"X nodes the harness started are still running: {retired.still_running}"


from invariants import test_y_ready  # noqa: E402,F401
