"""Stage 4 of 8 — deploy: the first Y node(s) start beside X, loaded with X's backup, and are ready.

Runbook step 4 (deploy cluster Y). DB-less: POST /config with the backup; hybrid: the new CP is
started first and loaded through its Admin API, then its first data planes join it.
"""

import pytest

from harness import Plan, RunContext, checks

pytestmark = pytest.mark.stage("deploy")


def test_first_y_nodes_ready(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    backup = run.require_backup()
    nodes = run.clusters.deploy_y(plan.y.initial, backup.config)
    assert len(nodes) == plan.y.initial
    stage_figures("y_nodes", ", ".join(str(n) for n in run.clusters.all_y()))
    if run.clusters.y_writes:  # existing Y with y.load: backup: the only writes to nodes the harness did not start
        evidence.attach_text("writes to Y nodes the harness did not start", "\n".join(run.clusters.y_writes))
        evidence.save_json("y-writes.json", run.clusters.y_writes)


def test_y_runs_the_planned_version(run: RunContext, plan: Plan) -> None:
    wrong = checks.deploy.y_version_mismatches(run.clusters, plan)
    assert not wrong, "; ".join(wrong)
