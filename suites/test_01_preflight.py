"""Stage 1 of 8 — preflight: the plan holds, every X node answers, the config freeze is armed.

Runbook step 1 (freeze config writes): X's configuration hash is recorded here, and every later
stage checks it is unchanged. Nothing here writes to X.
"""

import pytest

from harness import Ledger, Plan, RunContext, checks, config_drift

pytestmark = pytest.mark.stage("preflight")


def test_plan_is_valid(plan: Plan, stage_figures) -> None:
    problems = checks.preflight.plan_problems(plan)
    assert not problems, "; ".join(problems)
    stage_figures("upgrade", f"{plan.x.version or '(read from X)'} -> {plan.y.version} ({plan.mode})")


def test_x_nodes_answer_with_expected_version_and_role(run: RunContext, plan: Plan) -> None:
    run.clusters.start_x()
    problems = checks.preflight.x_mismatches(run.clusters, plan)
    assert not problems, "X does not match the plan: " + "; ".join(problems)


def test_probe_holds_the_plans_rate(run: RunContext, plan: Plan, ledger: Ledger, stage_figures) -> None:
    capacity = checks.preflight.probe_capacity(plan.probe.rate, run.work_dir)
    run.log(capacity.line())
    run.use_probe_rate(capacity.rate)
    ledger.set_fact("probe_capacity", {"asked": capacity.asked, "held": round(capacity.held), "rate": capacity.rate})
    stage_figures("probe_rate", f"{capacity.rate:g} req/s" + (" (capped)" if capacity.capped else ""))
    assert capacity.held > 0, (
        "the probe could not send a single request on time to a local echo: the machine is too busy to measure "
        "anything; free it and run again"
    )


def test_config_freeze_armed(run: RunContext, ledger: Ledger, stage_figures) -> None:
    value, why = checks.preflight.freeze_hash(checks.preflight.x_config_hashes(run.clusters))
    assert value is not None, why
    recorded = ledger.fact("x_config_hash")
    if recorded not in (None, value):
        pytest.fail(config_drift(
            f"X's hash {value} differs from {recorded} recorded by an earlier session of this run; start a fresh run"
        ))
    ledger.set_fact("x_config_hash", value)
    stage_figures("x_config_hash", value)
