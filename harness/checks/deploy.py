"""Deploy: the first Y nodes run the versions the plan says."""

from __future__ import annotations

from harness.compat import Version
from harness.plan import Plan
from harness.run.clusters import Clusters


def y_version_mismatches(clusters: Clusters, plan: Plan) -> list[str]:
    """Every Y node whose version is not the plan's (a DP's own version when the plan sets one)."""
    wrong = []
    for node, info in clusters.read_nodes("y"):
        want = plan.y.dp_version if node.role == "dp" and plan.y.dp_version else plan.y.version
        if info.version and Version.parse(info.version) != Version.parse(want):
            wrong.append(f"{node} runs {info.version}, the plan says {want}")
    return wrong
