"""Invariants checked at the end of every stage (``every_stage``): each stage module imports them.

- the config freeze held: X's configuration hash is the one recorded at preflight;
- X was never written to: every client the run opened on X is read-only, and none tried a write;
- Y is ready: every Y node deployed so far answers /status/ready 200.
"""

import pytest

from harness import Ledger, UpgradeEnvironment, x_config_hashes


@pytest.mark.every_stage
def test_x_config_unchanged(upgrade: UpgradeEnvironment, ledger: Ledger) -> None:
    recorded = ledger.fact("x_config_hash")
    assert recorded, "config freeze not armed: preflight recorded no X configuration hash"
    current = x_config_hashes(upgrade)
    drifted = {name: h for name, h in current.items() if h != recorded}
    assert not drifted, (
        "config drift: X's configuration changed since preflight (the config-write freeze did not hold): "
        + ", ".join(f"{name} hash {h} (recorded {recorded})" for name, h in sorted(drifted.items()))
        + ". Find who wrote to X, restore the backup on X, and restart the upgrade."
    )


@pytest.mark.every_stage
def test_x_never_written(upgrade: UpgradeEnvironment) -> None:
    audit = upgrade.x_audit()
    assert audit.clients, "no read-only client on X was opened, so nothing was checked"
    assert not audit.writable, f"writable clients were opened on X: {audit.writable}"
    assert not audit.write_attempts, (
        f"the harness attempted writes on X (all refused before sending): {audit.write_attempts}"
    )


@pytest.mark.every_stage
def test_y_ready(upgrade: UpgradeEnvironment) -> None:
    not_ready = upgrade.y_not_ready()
    assert upgrade.y_nodes, "no Y node is deployed, so Y readiness cannot hold"
    assert not not_ready, "Y not ready: " + "; ".join(not_ready)
