"""The shipped plans run end to end: the default (DB-less, Y in containers), hybrid, and 2.8 -> 3.4.

The default run is also the one the report checks read (issue 6): every artefact of the run
folder exists and parses, the sign-off page names the verdict, and no secret is anywhere in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ledger import STAGES
from harness.report.redact import find_secrets
from harness.report.screenshot import is_blank, screenshot
from tests.e2e.conftest import SAMPLE_KEYS, PlanRun, run_plan

# whole plans measure traffic: one worker runs them in turn with the other timing-sensitive tests
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]


@pytest.fixture(scope="module")
def default_run(module_tmp: Path) -> PlanRun:
    return run_plan(module_tmp, "plans/default.yaml")


def test_default_plan_passes_every_stage(default_run: PlanRun) -> None:
    assert default_run.returncode == 0, default_run.output[-3000:]
    assert default_run.outcomes() == {stage: "passed" for stage in STAGES}
    assert "[kuh] verdict: PASSED" in default_run.output
    assert default_run.leftovers() == []


def test_default_plan_probe_records_zero_failed_requests(default_run: PlanRun) -> None:
    steps = default_run.summary["steps"]
    assert [s["weight_y"] for s in steps] == [5, 25, 50, 100]
    assert all(s["outcome"] == "pass" for s in steps), steps
    assert sum(s["errors_x"] + s["errors_y"] for s in steps) == 0
    assert steps[-1]["share_y"] == 1.0  # at 100 % every answer came from Y
    assert sum(s["requests"] for s in steps) >= 3500  # 4 steps x 4 s x 250 req/s, less in-flight edges


def test_default_run_folder_holds_every_report(default_run: PlanRun) -> None:
    run = default_run.run_dir
    suites = default_run.junit()
    assert sum(int(s.get("tests", 0)) for s in suites.iter("testsuite")) >= 40
    results = list((run / "allure-results").glob("*-result.json"))
    assert len(results) >= 40
    features = {lab["value"] for r in results for lab in json.loads(r.read_text())["labels"]
                if lab["name"] == "feature"}
    assert set(STAGES) <= features
    assert (run / "allure-results" / "environment.properties").read_text().count("Y.version=3.8.1") == 1
    assert json.loads((run / "allure-results" / "categories.json").read_text())
    assert (run / "allure-report" / "index.html").stat().st_size > 10_000
    page = (run / "signoff.html").read_text()
    assert "PASSED" in page and "3.4.2" in page and "3.8.1" in page
    assert list(run.glob("signoff-*.png"))
    assert (run / "report.html").exists()
    for name in ("parity.json", "findings.json"):
        assert (run / "evidence" / name).exists()
    assert list((run / "evidence").glob("probe-window-*.csv"))


def test_no_secret_anywhere_in_the_run_folder_or_output(default_run: PlanRun) -> None:
    assert find_secrets(default_run.run_dir, SAMPLE_KEYS) == []
    for key in SAMPLE_KEYS:
        assert key not in default_run.output


def test_signoff_and_allure_pages_render_in_chromium(default_run: PlanRun, tmp_path: Path) -> None:
    for page in (default_run.run_dir / "signoff.html", default_run.run_dir / "allure-report" / "index.html"):
        png = screenshot(page, tmp_path / f"{page.stem}.png")
        assert not is_blank(png), f"{page} rendered blank"


def test_hybrid_plan_passes_cp_first_then_data_planes(module_tmp: Path) -> None:
    run = run_plan(module_tmp, "plans/hybrid.yaml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    staging = run.verdict("staging")
    assert staging is not None and "fresh data-plane rows" in staging["figures"]["data_planes"]
    roles = {n["name"]: n["role"] for n in run.summary["nodes"]}
    assert roles["cp-y"] == "cp" and roles["dp-y1"] == "dp" and roles["cp-x"] == "cp"
    assert run.leftovers() == []


def test_kong_28_to_34_plan_reports_the_breaking_changes_it_meets(module_tmp: Path) -> None:
    run = run_plan(module_tmp, "plans/kong-2.8-to-3.4.yaml")
    assert run.returncode == 0, run.output[-3000:]
    ids = {f["id"] for f in json.loads((run.run_dir / "evidence" / "findings.json").read_text())}
    assert {"regex-path-without-tilde", "format-version-3", "plugin-priority-3.0"} <= ids
    assert run.outcomes()["considerations"] == "passed"  # warnings: Kong 3.x migrates 2.x-format files itself
    assert run.leftovers() == []


def test_nginx_splitter_plan_passes(module_tmp: Path) -> None:
    run = run_plan(module_tmp, "plans/dbless-nginx.yaml")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes() == {stage: "passed" for stage in STAGES}
    steps = run.summary["steps"]
    assert [s["weight_y"] for s in steps] == [10, 50, 100]
    assert sum(s["errors_x"] + s["errors_y"] for s in steps) == 0  # reloads under traffic lose nothing
    assert run.verdict("shift")["figures"]["splitter"].startswith("nginx at http://127.0.0.1:")
    assert run.leftovers() == []
