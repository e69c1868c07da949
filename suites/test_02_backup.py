"""Stage 2 of 8 — backup: X's declarative configuration is captured and shown to restore.

Runbook step 2 (back up the declarative config). DB-less: GET /config; hybrid: the CP's entities,
page by page. The restorable copy stays in the harness's private work folder (it holds consumer
keys); the run folder gets a redacted copy and its checksum.
"""

import pytest

from harness import Ledger, Plan, RunContext, checks, config_drift

pytestmark = pytest.mark.stage("backup")


def test_capture_x_configuration(run: RunContext, ledger: Ledger, evidence, stage_figures) -> None:
    reader = run.clusters.x_reader()
    backup = checks.backup.capture_backup(run.clients.x_admin(reader), run.work_dir, node=str(reader))
    run.set_backup(backup)
    assert backup.entity_count > 0, "the backup of X holds no entity"
    ledger.set_fact("backup", backup.summary())
    evidence.attach_json("backup (redacted)", backup.redacted())
    stage_figures("entities", backup.entity_count)


def test_backup_restores_to_the_same_configuration(run: RunContext, plan: Plan, evidence) -> None:
    backup = run.require_backup()
    version = plan.x.version or run.clusters.read_nodes("x")[0][1].version
    result = checks.backup.restore_diff(run.clusters, backup, version)
    evidence.attach_json("restore diff", result.to_dict())
    assert result.clean, config_drift(f"the backup does not restore to the same configuration:\n{result.render_text()}")
