"""Stage 6 of 8 — scale: the remaining Y nodes start, and each passes the staging smoke.

Runbook step 6 (add more Y nodes). Each new node must be ready, carry the same configuration hash
as the first Y node, and answer the request corpus as the first Y node does.
"""

import pytest

from harness import Plan, UpgradeEnvironment

pytestmark = pytest.mark.stage("scale")


def test_remaining_y_nodes_ready(upgrade: UpgradeEnvironment, plan: Plan, stage_figures) -> None:
    nodes = upgrade.deploy_y(plan.y.count)
    assert len(nodes) == plan.y.count
    stage_figures("y_nodes", len(nodes))


def test_each_y_node_passes_the_smoke(upgrade: UpgradeEnvironment) -> None:
    problems = upgrade.smoke_y_nodes()
    assert not problems, "behaviour difference between Y nodes:\n  " + "\n  ".join(problems)


from invariants import test_x_config_unchanged, test_x_never_written, test_y_ready  # noqa: E402,F401
