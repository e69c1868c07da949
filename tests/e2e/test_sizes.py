"""A whole upgrade at a real size: 1,000 services, 2,000 routes, 1,000 consumers with keys, 500 plugins
(5,500 entities), every stage on emulator nodes. The 55,000-entity run lives in the benchmarks
(`python -m benchmarks.full_run --size large`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.sized_config import write_sized_plan
from harness.ledger import STAGES
from tests.e2e.conftest import run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


def test_a_5500_entity_config_upgrades_through_every_stage(tmp_path: Path) -> None:
    plan = write_sized_plan("medium", tmp_path / "plan")
    run = run_plan(tmp_path, str(plan), timeout=900)
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    assert run.ledger["facts"]["backup"]["entities"] >= 3000   # nested entities count with their parent
    staging = run.verdict("staging")["figures"]
    assert "0 added, 0 removed, 0 changed" in staging["parity"], staging
    assert run.leftovers() == []
