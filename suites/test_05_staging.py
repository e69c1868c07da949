"""Stage 5 of 8 — staging: Y alone, before any user traffic, behaves like X.

Runbook step 5 (staging tests): configuration parity X vs Y (the plan's allow-list applied); the
same request corpus sent to X and to Y (status, what the upstream received, bodies; version
changes normalised by rule); key-auth behaviour as version Y is known to answer; and in hybrid
mode, every data plane connected to its control plane with the CP's config hash.
"""

import pytest

from harness import KEY_AUTH_CASES, Plan, UpgradeEnvironment

pytestmark = pytest.mark.stage("staging")


def test_config_parity(upgrade: UpgradeEnvironment, plan: Plan, evidence, stage_figures) -> None:
    result = upgrade.parity()
    evidence.attach_json("config parity X vs Y", result.to_dict())
    evidence.attach_html("config parity X vs Y", result.render_html())
    evidence.save_json("parity.json", result.to_dict())
    stage_figures("parity", result.summary())
    assert result.clean, f"config drift: Y's configuration differs from X's:\n{result.render_text()}"


def test_differential_requests(upgrade: UpgradeEnvironment, evidence, stage_figures) -> None:
    report = upgrade.differential()
    evidence.attach_text("differential requests", report.render_text())
    stage_figures("differential", f"{report.compared} requests, {len(report.differences)} differences")
    assert report.compared > 0, f"no request could be derived from the configuration: {report.skipped}"
    assert not report.differences, (
        "behaviour difference: Y answers differently from X:\n  "
        + "\n  ".join(d.render() for d in report.differences)
    )


@pytest.mark.parametrize("case", KEY_AUTH_CASES)
def test_key_auth(upgrade: UpgradeEnvironment, case: str) -> None:
    outcome = upgrade.key_auth_case(case)
    if outcome.not_applicable:
        pytest.skip(f"the configuration has no route for this case: {outcome.detail}")
    assert outcome.ok, f"behaviour difference: key-auth {case}: {outcome.detail}"


def test_data_planes_connected(upgrade: UpgradeEnvironment, plan: Plan, stage_figures) -> None:
    if plan.mode != "hybrid":
        pytest.skip("DB-less plan: there are no data planes")
    report = upgrade.data_plane_report()
    stage_figures("data_planes", report.summary_line())
    assert report.ok, "data planes not in sync with the control plane:\n  " + "\n  ".join(report.problems)


from invariants import test_x_config_unchanged, test_x_never_written, test_y_ready  # noqa: E402,F401
