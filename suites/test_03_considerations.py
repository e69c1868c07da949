"""Stage 3 of 8 — considerations: the breaking changes between X's and Y's versions, for this config.

Runbook step 3 (weigh upgrade considerations and breaking changes). Every rule whose version
boundary the upgrade crosses is checked against X's backup and kong.conf; each finding says what
breaks and what to do. Findings at or above ``considerations.fail_on`` fail the stage unless the
plan accepts them with a reason.
"""

import pytest

from harness import Plan, RunContext, checks

pytestmark = pytest.mark.stage("considerations")


def test_breaking_changes_reviewed(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    x_version = plan.x.version or run.clusters.read_nodes("x")[0][1].version
    config = run.require_backup().config
    review = checks.considerations.breaking_changes(plan, config, x_version)
    # one row per rule, with the routes, consumers and plugins it applies to by name (ids resolved)
    run.record.set_findings(review.findings, config, {f.id: why for f, why in review.accepted})
    evidence.attach_json("breaking-change findings", [f.to_dict() for f in review.findings])
    evidence.attach_text("breaking-change findings (explained)", review.render_text())
    counts = f"{len(review.findings)} ({len(review.blocking)} blocking, {len(review.accepted)} accepted)"
    stage_figures("findings", counts)
    evidence.save_json("findings.json", [f.to_dict() for f in review.findings])
    assert not review.blocking, (
        f"breaking changes block the upgrade {review.x_version} -> {review.y_version} "
        f"(fail_on={plan.considerations.fail_on}):\n{review.render_blocking()}\n"
        "Fix them in X's configuration (on a copy), or accept each in the plan's considerations.accept "
        "with a reason."
    )
