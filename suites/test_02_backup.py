"""Stage 2 of 8 — backup: X's declarative configuration is captured and shown to restore.

Runbook step 2 (back up the declarative config). DB-less: GET /config; hybrid: the CP's entities,
page by page. The restorable copy stays in the harness's private work folder (it holds consumer
keys); the run folder gets a redacted copy and its checksum.
"""

import pytest

from harness import Ledger, Plan, UpgradeEnvironment, diff, normalise

pytestmark = pytest.mark.stage("backup")


def test_capture_x_configuration(upgrade: UpgradeEnvironment, ledger: Ledger, evidence, stage_figures) -> None:
    backup = upgrade.capture_backup()
    assert backup.entity_count > 0, "the backup of X holds no entity"
    ledger.set_fact("backup", backup.summary())
    evidence.attach_json("backup (redacted)", backup.redacted())
    stage_figures("entities", backup.entity_count)


def test_backup_restores_to_the_same_configuration(upgrade: UpgradeEnvironment, plan: Plan, evidence) -> None:
    backup = upgrade.load_backup()
    restored = upgrade.restore_into_scratch(backup)
    result = diff(normalise(backup.config), normalise(restored))
    evidence.attach_json("restore diff", result.to_dict())
    assert result.clean, f"config drift: the backup does not restore to the same configuration:\n{result.render_text()}"


from invariants import test_x_config_unchanged, test_x_never_written  # noqa: E402,F401
