"""Stage 4 of 8 — deploy: the first Y node(s) start beside X, loaded with X's backup, and are ready.

Runbook step 4 (deploy cluster Y). DB-less: POST /config with the backup; hybrid: the new CP is
started first and loaded through its Admin API, then its first data planes join it.
"""

import pytest

from harness import Plan, UpgradeEnvironment, Version

pytestmark = pytest.mark.stage("deploy")


def test_first_y_nodes_ready(upgrade: UpgradeEnvironment, plan: Plan, stage_figures) -> None:
    nodes = upgrade.deploy_y(plan.y.initial)
    assert len(nodes) == plan.y.initial
    stage_figures("y_nodes", ", ".join(str(n) for n in upgrade.all_y()))


def test_y_runs_the_planned_version(upgrade: UpgradeEnvironment, plan: Plan) -> None:
    wrong = []
    for node, info in upgrade.read_y_nodes():
        want = plan.y.dp_version if node.role == "dp" and plan.y.dp_version else plan.y.version
        if info.version and Version.parse(info.version) != Version.parse(want):
            wrong.append(f"{node} runs {info.version}, the plan says {want}")
    assert not wrong, "; ".join(wrong)


from invariants import test_x_config_unchanged, test_x_never_written, test_y_ready  # noqa: E402,F401
