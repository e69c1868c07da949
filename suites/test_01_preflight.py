"""Stage 1 of 8 — preflight: the plan holds, every X node answers, the config freeze is armed.

Runbook step 1 (freeze config writes): X's configuration hash is recorded here, and every later
stage checks it is unchanged. Nothing here writes to X.
"""

import pytest

from harness import Ledger, Plan, UpgradeEnvironment, Version, x_config_hashes

pytestmark = pytest.mark.stage("preflight")


def test_plan_is_valid(plan: Plan, stage_figures) -> None:
    assert Version.parse(plan.y.version) >= Version.parse(plan.x.version or "0.0.0") or plan.x.version is None, (
        f"the plan goes from {plan.x.version} down to {plan.y.version}: that is a downgrade, not an upgrade"
    )
    stage_figures("upgrade", f"{plan.x.version or '(read from X)'} -> {plan.y.version} ({plan.mode})")


def test_x_nodes_answer_with_expected_version_and_role(upgrade: UpgradeEnvironment, plan: Plan) -> None:
    upgrade.start_x()
    problems = []
    for node, info in upgrade.read_x_nodes():
        if plan.x.version and info.version and Version.parse(info.version) != Version.parse(plan.x.version):
            problems.append(f"{node}: runs {info.version}, the plan says {plan.x.version}")
        if info.mode != node.role:
            problems.append(f"{node}: runs as {info.mode}, the plan expects {node.role}")
    assert not problems, "X does not match the plan: " + "; ".join(problems)


def test_config_freeze_armed(upgrade: UpgradeEnvironment, ledger: Ledger, stage_figures) -> None:
    hashes = x_config_hashes(upgrade)
    assert len(set(hashes.values())) == 1, (
        f"X nodes carry different configurations (hashes {hashes}); settle X before upgrading"
    )
    (value,) = set(hashes.values())
    assert value != "0" * 32, "X has an empty configuration (hash of 32 zeros): nothing to upgrade"
    if ledger.fact("x_config_hash") not in (None, value):
        pytest.fail(
            f"config drift: X's hash {value} differs from {ledger.fact('x_config_hash')} recorded by an "
            "earlier session of this run; start a fresh run"
        )
    ledger.set_fact("x_config_hash", value)
    stage_figures("x_config_hash", value)


from invariants import test_x_config_unchanged, test_x_never_written  # noqa: E402,F401
