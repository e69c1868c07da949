"""Stage 5 of 8 — staging: Y alone, before any user traffic, behaves like X.

Runbook step 5 (staging tests): configuration parity X vs Y (the plan's allow-list applied); the
same request corpus sent to X and to Y (status, what the upstream received, bodies; version
changes normalised by rule); key-auth behaviour as version Y is known to answer; and in hybrid
mode, every data plane connected to its control plane with the CP's config hash.
"""

import pytest

from harness import ParitySummary, Plan, RunContext, behaviour_difference, checks, config_drift

pytestmark = pytest.mark.stage("staging")


def test_config_parity(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    y = run.clusters.y_cp or run.clusters.first_y()
    result = checks.staging.config_parity(run.clients.y_admin(y), run.require_backup().config, plan.parity.allow)
    run.record.parity = ParitySummary.of(result)
    evidence.attach_json("config parity X vs Y", result.to_dict())
    evidence.attach_html("config parity X vs Y", result.render_html())
    evidence.save_json("parity.json", result.to_dict())
    stage_figures("parity", result.summary())
    assert result.clean, config_drift(f"Y's configuration differs from X's:\n{result.render_text()}")


def test_parity_with_the_reviewed_file(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    if plan.parity.against != "file":
        pytest.skip("parity.against is x: Y is compared with X's backup only")
    y = run.clusters.y_cp or run.clusters.first_y()
    result = checks.staging.file_parity(run.clients.y_admin(y), run.upstream.reviewed_state(), plan.y_version,
                                        run.upstream.url, plan.parity.allow)
    evidence.attach_json("config parity Y vs the reviewed file", result.diff.to_dict())
    stage_figures("parity_file", result.diff.summary())
    assert result.clean, config_drift("Y's configuration differs from the reviewed file:\n  "
                                      + "\n  ".join(result.located))


def test_differential_requests(run: RunContext, plan: Plan, evidence, stage_figures) -> None:
    x, y = run.clusters.x_nodes[0], run.clusters.first_y()
    report = checks.staging.differential(run.corpus(), x, y, plan.differential)
    evidence.attach_text("differential requests", report.render_text())
    stage_figures("differential", report.summary())
    assert report.compared > 0, f"no request could be derived from the configuration: {report.skipped}"
    assert report.complete, f"the differential did not finish: {report.summary()}"
    assert not report.differences, behaviour_difference(
        f"Y answers differently from X ({y.name} vs {x.name}):\n  "
        + "\n  ".join(d.render() for d in report.differences)
    )


@pytest.mark.parametrize("case", checks.staging.KEY_AUTH_CASES)
def test_key_auth(run: RunContext, case: str) -> None:
    y = run.clusters.first_y()
    outcome = checks.staging.key_auth_case(run.corpus(), y, case)
    if outcome.not_applicable:
        pytest.skip(f"the configuration has no route for this case: {outcome.detail}")
    assert outcome.ok, behaviour_difference(f"key-auth {case} on {y.name}: {outcome.detail}")


def test_data_planes_connected(run: RunContext, plan: Plan, stage_figures) -> None:
    if plan.mode != "hybrid" or run.clusters.y_cp is None:
        pytest.skip("DB-less plan: there are no data planes")
    report = checks.staging.data_plane_report(run.clients, run.clusters.y_cp, run.clusters.y_nodes)
    stage_figures("data_planes", report.summary_line())
    assert report.ok, "data planes not in sync with the control plane:\n  " + "\n  ".join(report.problems)
