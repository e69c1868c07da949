"""Invariants, checked in every stage (``every_stage``); fixtures/stages.py adds them to each stage.

- the config freeze holds: every X node still carries the configuration hash recorded at preflight;
- X is never written: every client the run opened on X is read-only, and none tried a write;
- Y is ready: every Y node deployed so far answers /status/ready 200 (from the deploy stage on).
"""

import pytest

from harness import Ledger, RunContext, checks, config_drift


@pytest.mark.every_stage
def test_x_config_unchanged(run: RunContext, ledger: Ledger) -> None:
    recorded = ledger.fact("x_config_hash")
    assert recorded, "config freeze not armed: preflight recorded no X configuration hash"
    current = checks.preflight.x_config_hashes(run.clusters)
    drifted = {name: h for name, h in current.items() if h != recorded}
    assert not drifted, config_drift(
        "X's configuration changed since preflight (the config-write freeze did not hold): "
        + ", ".join(f"{name} hash {h} (recorded {recorded})" for name, h in sorted(drifted.items()))
        + ". Find who wrote to X, restore the backup on X, and restart the upgrade."
    )


@pytest.mark.every_stage
def test_x_never_written(run: RunContext) -> None:
    audit = run.clients.x_audit()
    assert audit.clients, "no read-only client on X was opened, so nothing was checked"
    assert not audit.write_attempts, (
        f"the harness attempted writes on X (all refused before sending): {list(audit.write_attempts)}"
    )


@pytest.mark.every_stage(needs="y")
def test_y_ready(run: RunContext) -> None:
    assert run.clusters.y_nodes, "no Y node is deployed, so Y readiness cannot hold"
    not_ready = run.clusters.y_not_ready()
    assert not not_ready, "Y not ready: " + "; ".join(not_ready)
