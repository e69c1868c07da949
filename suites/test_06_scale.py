"""Stage 6 of 8 — scale: the remaining Y nodes start, and each passes the staging smoke.

Runbook step 6 (add more Y nodes). Each new node must be ready, carry the same configuration hash
as the first Y node, and answer the request corpus as the first Y node does.
"""

import pytest

from harness import Plan, RunContext, behaviour_difference, checks

pytestmark = pytest.mark.stage("scale")


def test_remaining_y_nodes_ready(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    backup = run.require_backup()
    nodes = run.clusters.deploy_y(plan.y.count, backup.config)
    assert len(nodes) == plan.y.count
    stage_figures("y_nodes", len(nodes))
    if run.clusters.y_writes:  # existing Y with y.load: backup: the only writes to nodes the harness did not start
        evidence.attach_text("writes to Y nodes the harness did not start", "\n".join(run.clusters.y_writes))
        evidence.save_json("y-writes.json", run.clusters.y_writes)


def test_each_y_node_passes_the_smoke(run: RunContext, plan: Plan) -> None:
    first, *others = run.clusters.y_nodes
    problems = checks.scale.smoke(run.clients, run.corpus(), first, others, plan.differential)
    assert not problems, behaviour_difference("between Y nodes:\n  " + "\n  ".join(problems))
