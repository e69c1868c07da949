"""Whole plans judged by the balancer's and Kong's Prometheus metrics with user-like traffic (wrk) beside the
probe: a healthy Y passes on every source, and a y-5xx rehearsal is caught by each source alone.

X and Y run plans/configs/sample-prometheus.yaml (the prometheus plugin, global, with its 3.x
status_code_metrics and latency_metrics flags), so the prometheus source is available on both sides.
Holds are 3 s; each plan takes 20-30 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.ledger import STAGES
from tests.e2e.conftest import PlanRun, run_plan

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


def thresholds(step: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["outcome"] for t in step["thresholds"]}


def test_every_source_with_user_traffic_passes_a_healthy_y(module_tmp: Path) -> None:
    run: PlanRun = run_plan(module_tmp, "plans/scenarios/sources-healthy.yaml")
    assert run.returncode == 0, run.output[-3000:]
    assert all(run.outcomes()[s] == "passed" for s in STAGES), run.outcomes()
    out = run.output
    assert "gate source balancer: reads HAProxy's per-request log" in out
    assert "gate source prometheus: reads /metrics on each node" in out
    assert "gate latency from: balancer" in out
    assert "user-like traffic: wrk" in out and "user-like traffic (wrk):" in out, "started, then stopped with its rate"
    steps = run.summary["steps"]
    assert [s["weight_y"] for s in steps] == [10, 50, 100]
    for step in steps:
        names = thresholds(step)
        assert step["outcome"] == "pass", step
        for source in ("balancer", "prometheus"):
            assert any(n.startswith("sequential_") and n.endswith(f"[{source}]") for n in names), names
            assert names.get(f"share_y[{source}]") == "pass"
        assert names.get("sequential_error_rate") == "pass" or names.get("sequential_error_rate_limit") == "pass"


@pytest.mark.parametrize("source", ["balancer", "prometheus"])
def test_y_5xx_is_caught_by_one_source_alone(module_tmp: Path, source: str) -> None:
    run = run_plan(module_tmp, f"plans/scenarios/y-5xx-{source}.yaml")
    assert run.returncode == 1, run.output[-3000:]
    assert run.summary["failing_stage"] == "shift"
    verdict = run.verdict("shift")
    assert verdict is not None
    message = verdict["message"]
    assert "gate failed: at" in message and f"{source}:" in message, message
    assert f"{source} Y: y" in message, "the failing Y node named from the source's own counters"
    failed = run.summary["steps"][-1]
    names = thresholds(failed)
    bad = [n for n, o in names.items() if o == "fail"]
    assert bad and all(n.endswith(f"[{source}]") for n in bad), names
    assert "probe_errors" not in names, "the probe does not judge when the plan's sources leave it out"
    assert "ROLLBACK: all traffic on X" in run.output
