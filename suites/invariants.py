"""Invariants, checked in every stage (``every_stage``); fixtures/stages.py adds them to each stage.

- the config freeze holds: every X node still carries the configuration hash recorded at preflight;
- X is never written: every client the run opened on X is read-only, and none tried a write;
- Y is ready: every Y node deployed so far answers /status/ready 200 (from the deploy stage on).
"""

import pytest

from harness import (
    HarnessError,
    Ledger,
    RunContext,
    capture_declarative,
    checks,
    config_drift,
    diff,
    normalise,
)


@pytest.mark.every_stage
def test_x_config_unchanged(run: RunContext, ledger: Ledger) -> None:
    recorded = ledger.fact("x_config_hash")
    assert recorded, "config freeze not armed: preflight recorded no X configuration hash"
    current = checks.preflight.x_config_hashes(run.clusters)
    drifted = {name: h for name, h in current.items() if h != recorded}
    what = _what_changed(run, sorted(drifted)[0]) if drifted else ""
    assert not drifted, config_drift(
        f"X's configuration changed since preflight on {', '.join(sorted(drifted))} (the config-write freeze did "
        f"not hold){what}. Find who wrote to X, restore the backup on X, and restart the upgrade."
    )


def _what_changed(run: RunContext, node_name: str) -> str:
    """X's configuration now against the backup, decK-style, into the run record; a one-line summary."""
    if run.backup is None:
        return " (no backup yet to compare with)"
    node = next(n for n in run.clusters.x_nodes if n.name == node_name)
    try:
        reader = node if node.admin_url else run.clusters.x_reader()
        now = capture_declarative(run.clients.x_admin(reader))
        changes = diff(normalise(run.backup.config), normalise(now))
    except HarnessError as exc:
        return f" (what changed could not be read: {str(exc).splitlines()[0]})"
    run.record.set_drift(node_name, changes)
    summary = run.record.drift.lines[-1] if run.record.drift else ""
    first = next((ln for ln in (run.record.drift.lines if run.record.drift else ()) if not ln.startswith(" ")), "")
    return f": {summary}" + (f", first {first}" if first and first != summary else "")


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
