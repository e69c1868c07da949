"""Secrets never leave where they belong: canaries planted in the config (a consumer key and a comment
line), the admin token and a failing run's messages are searched for in every byte the run writes:
the run folder, the private work folder and the terminal, plain and base64. The only place a key may
be is the restorable backup (mode 0600) in the private work folder."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml

from harness.report.redact import find_secrets
from tests.e2e.conftest import ROOT, plan_env, suites_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]
KEY = "canary-key-7f3a9c0e55d2"          # a consumer's key-auth credential
TOKEN = "canary-token-b81d4e6f902a"      # the admin token (by environment variable)
COMMENT = "canary-comment-3c5e7a9b1d0f"  # a comment line of the config file the plan names


def test_no_canary_reaches_the_run_folder_the_work_folder_or_the_terminal(tmp_path: Path) -> None:
    import subprocess

    config = (ROOT / "plans/configs/sample.yaml").read_text()
    config = f"# {COMMENT}\n" + config.replace("fake-key-alice-0001", KEY)
    folder = tmp_path / "plan"
    folder.mkdir()
    (folder / "sample.yaml").write_text(config)
    plan = yaml.safe_load((ROOT / "plans/default.yaml").read_text())
    plan.update(name="canary")
    plan["config"]["source"] = "sample.yaml"
    plan["y"]["provider"] = "process"
    plan["credentials"] = {"admin_token_env": "KUH_CANARY_TOKEN"}
    plan["traffic"].update(steps=[10, 100], hold_seconds=3)
    plan["probe"]["rate"] = 100         # secrets, not load, are this test's subject
    plan["gates"]["min_samples"] = 20
    (folder / "plan.yaml").write_text(yaml.safe_dump(plan))
    run_dir = tmp_path / "run"
    env = {**plan_env(tmp_path / "work"), "KUH_CANARY_TOKEN": TOKEN}
    proc = subprocess.run(suites_command(str(folder / "plan.yaml"), run_dir), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]

    canaries = (KEY, TOKEN, COMMENT)
    for canary in canaries:
        for form in (canary, base64.b64encode(canary.encode()).decode()[:-2]):
            assert form not in output, f"{canary} reached the terminal"
    assert find_secrets(run_dir, canaries) == []
    work = tmp_path / "work"
    backups = [p for p in work.rglob("backup.json")]
    assert backups and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in backups)
    leaks = [hit for hit in find_secrets(work, canaries) if hit.path.name != "backup.json"]
    assert leaks == [], [str(h) for h in leaks]
    assert KEY in backups[0].read_text(), "the restorable backup keeps the key (that is what it is for)"
