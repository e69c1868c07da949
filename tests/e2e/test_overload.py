"""The harness's own overload is not a verdict on Y: a plan asking the probe for more than this machine
holds is capped at preflight (and says so), and the upgrade passes on a healthy Y."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ledger import STAGES
from tests.e2e.conftest import run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


def test_a_rate_beyond_the_probe_is_capped_and_the_run_passes(tmp_path: Path) -> None:
    run = run_plan(tmp_path, "plans/probe-overload.yaml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    capacity = run.ledger["facts"]["probe_capacity"]
    assert capacity["asked"] == 9000 and capacity["rate"] < 9000, capacity
    assert capacity["rate"] <= 0.5 * capacity["held"] + 1
    assert "capped at" in run.output and "the plan asks 9,000 req/s" in run.output
    assert run.leftovers() == []
