"""Preflight: X's nodes answer as the plan says, and X's configuration hash arms the freeze."""

from __future__ import annotations

from harness.compat import Version
from harness.errors import HarnessError
from harness.plan import Plan
from harness.run.clusters import Clusters

EMPTY_HASH = "0" * 32


def plan_problems(plan: Plan) -> list[str]:
    """What makes the plan unusable as an upgrade (a downgrade)."""
    if plan.x.version and Version.parse(plan.y.version) < Version.parse(plan.x.version):
        return [f"the plan goes from {plan.x.version} down to {plan.y.version}: that is a downgrade, not an upgrade"]
    return []


def x_mismatches(clusters: Clusters, plan: Plan) -> list[str]:
    """Every X node whose version or role is not what the plan says."""
    problems = []
    for node, info in clusters.read_nodes("x"):
        if plan.x.version and info.version and Version.parse(info.version) != Version.parse(plan.x.version):
            problems.append(f"{node}: runs {info.version}, the plan says {plan.x.version}")
        if info.mode != node.role:
            problems.append(f"{node}: runs as {info.mode}, the plan expects {node.role}")
    return problems


def x_config_hashes(clusters: Clusters) -> dict[str, str]:
    """The configuration hash each X proxy node reports on /status (DB-less nodes and DPs)."""
    out: dict[str, str] = {}
    for node in clusters.x_nodes:
        status = (clusters.clients.x_admin(node) if node.admin_url else clusters.clients.status(node)).status()
        value = status.get("configuration_hash")
        if not isinstance(value, str):
            raise HarnessError(
                f"{node} reports no configuration_hash on /status (got keys {sorted(status)})",
                hint="configuration_hash exists on DB-less nodes and data planes; is X in the mode the plan says?",
            )
        out[node.name] = value
    return out


def freeze_hash(hashes: dict[str, str]) -> tuple[str | None, str]:
    """The one hash X's nodes share (the freeze's reference), or None and why it cannot be armed."""
    values = set(hashes.values())
    if len(values) != 1:
        return None, f"X nodes carry different configurations (hashes {hashes}); settle X before upgrading"
    (value,) = values
    if value == EMPTY_HASH:
        return None, "X has an empty configuration (hash of 32 zeros): nothing to upgrade"
    return value, ""
