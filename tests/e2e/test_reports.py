"""The reports a release manager and a CI job read, checked on real runs as a browser renders them.

Each plan runs once per module (module-scoped fixtures) and several tests read it:
- a passing 2.8 -> 3.4 run (its webhook receiver is down: the verdict stays PASSED, exit 0);
- a failing key-auth run: the headline, the resume command, each fact once; then a refused ``--stage``
  leaves its folder byte-identical, and ``--lf`` resumes it from staging;
- a failing shift run with a webhook receiver on 127.0.0.1: one call per stage verdict and one per
  rollback; exit 1;
- a freeze failure: what changed on X, decK-style.
The sign-off pages are read from the DOM headless Chromium renders (``--dump-dom``).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.ledger import STAGES
from harness.ports import free_port
from harness.report.screenshot import dump_dom, is_blank, screenshot
from tests.e2e.conftest import ROOT, PlanRun, plan_env, run_plan, suites_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("timing")]
DOCS = ROOT / "docs"
# the README's screenshots are remade from these runs only when asked: KUH_UPDATE_DOCS=1 (a test run leaves
# the checkout as it was)
UPDATE_DOCS = os.environ.get("KUH_UPDATE_DOCS") == "1"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def plan_copy(tmp: Path, plan: str, **notify: object) -> str:
    """The plan with its config path made absolute (it moves folder) and a ``notify`` section."""
    data = yaml.safe_load((ROOT / plan).read_text())
    source = (ROOT / plan).parent / data["config"]["source"]
    data["config"]["source"] = str(source.resolve())
    data["config"]["allowed_root"] = str(source.resolve().parent)
    data["notify"] = {**notify, "timeout_seconds": 2}
    path = tmp / Path(plan).name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def dom_text(run: PlanRun) -> tuple[str, str]:
    """(the rendered DOM without images and styles, its visible text with spaces collapsed)."""
    dom = dump_dom(run.run_dir / "signoff.html")
    dom = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", dom)
    dom = re.sub(r"<style>.*?</style>", "", dom, flags=re.S)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    return dom, text


def headline_of(dom: str) -> str:
    found = re.search(r'<p class="headline" id="headline">(.*?)</p>', dom, re.S)
    assert found, "no headline on the page"
    return html.unescape(found.group(1))


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


# ---- a passing 2.8 -> 3.4 run, its webhook receiver down ------------------------------------------------


@pytest.fixture(scope="module")
def lts(module_tmp: Path) -> PlanRun:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there (plan.Url takes no path yet)
    return run_plan(module_tmp, plan_copy(module_tmp, "plans/kong-2.8-to-3.4.yaml", webhook=dead), timeout=420)


def test_passing_run_exits_0_even_when_the_webhook_receiver_is_down(lts: PlanRun) -> None:
    assert lts.returncode == 0, lts.output[-3000:]
    assert lts.outcomes() == {s: "passed" for s in STAGES}
    assert "notification failed (the verdict stands)" in lts.output
    assert "verdict: PASSED" in lts.output and "exit code 0" in lts.output


def test_passing_page_lists_every_node_and_the_findings_by_entity(lts: PlanRun) -> None:
    dom, text = dom_text(lts)
    assert "PASSED" in text and "passed every stage" in text
    nodes = lts.summary["nodes"]
    names = {n["name"] for n in nodes}
    assert {"x1", "y1"} <= names and len([n for n in nodes if n["cluster"] == "y"]) >= 2, names  # scaled Y too
    table = dom.split('id="nodes"', 1)[1].split("</table>", 1)[0]
    for node in nodes:
        assert f"<td>{node['name']}</td>" in table
        assert node["provider"] and node["state"]
    # findings once per rule, with the routes they apply to by name (the issue: "which routes need ~")
    findings = lts.summary["findings"]
    ids = [f["id"] for f in findings]
    assert len(ids) == len(set(ids)) and len(ids) >= 5
    regex = next(f for f in findings if f["id"] == "regex-path-without-tilde")
    assert any(e.startswith("route ") for e in regex["entities"]), regex
    for entity in regex["entities"]:
        assert entity in text
    assert not re.search(r"@route:[0-9a-f]{8}", text), "a plugin's scope is shown as an id"
    assert "Approval" in text and "What next" in text


def test_passing_run_prints_thresholds_and_findings_on_the_terminal(lts: PlanRun) -> None:
    out = lts.output
    assert "breaking-change findings (" in out and "regex-path-without-tilde" in out
    assert re.search(r"\[kuh\]\s+\u2713 error_rate_y \.+ \d+\.\d\d % \(lower bound [\d.]+ %\) <= \d+\.\d\d %",
                     out), out[-4000:]
    assert re.search(r"\[kuh\]\s+\u2713 p99_y \.+ [\d.]+ ms \(lower bound [\d.]+ ms\) <= [\d.]+ ms", out)
    assert "kong upgrade summary" in out and "sign-off page:" in out and "traffic: 3 step(s)" in out


def test_passing_page_screenshot_for_the_readme(lts: PlanRun, module_tmp: Path) -> None:
    png = screenshot(lts.run_dir / "signoff.html", module_tmp / "signoff-passed.png", height=2200)
    assert not is_blank(png)
    if UPDATE_DOCS:
        (DOCS / "signoff-passed.png").write_bytes(png.read_bytes())


def test_allure_and_pytest_html_name_the_plan_and_verdict(lts: PlanRun) -> None:
    env = (lts.run_dir / "allure-results" / "environment.properties").read_text().splitlines()
    assert env[0].startswith("verdict=") and env[0].endswith(": PASSED")
    assert any(line.startswith("finding.regex-path-without-tilde=") for line in env)
    executor = json.loads((lts.run_dir / "allure-results" / "executor.json").read_text())
    assert executor["reportName"].endswith(": PASSED")
    results = [json.loads(p.read_text()) for p in (lts.run_dir / "allure-results").glob("*-result.json")]
    parents = {lab["value"] for r in results for lab in r["labels"] if lab["name"] == "parentSuite"}
    assert parents == {f"{i + 1}. {s}" for i, s in enumerate(STAGES)}
    report = (lts.run_dir / "report.html").read_text()
    assert "<title>Kong upgrade kong-2-8-to-3-4" in report or "Kong upgrade " in report
    assert "PASSED" in report and "Packages" not in report


# ---- a failing key-auth run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyauth(module_tmp: Path) -> PlanRun:
    return run_plan(module_tmp, "plans/scenarios/keyauth-regression.yaml")


def test_failing_keyauth_page_has_a_short_headline_naming_check_and_node(keyauth: PlanRun) -> None:
    assert keyauth.returncode == 1, keyauth.output[-3000:]
    dom, text = dom_text(keyauth)
    headline = headline_of(dom)
    assert len(headline) < 200, headline
    assert headline.startswith("staging failed at test_differential_requests"), headline
    assert "y1" in headline and "X=200 | Y=401" in headline
    assert text.count(headline) == 1  # in the banner only
    # the failure's first fact: in the headline and in the stage's full message, nowhere else
    fact = "accounts-main/good-key: status: X=200 | Y=401"
    assert text.count(fact) <= 2, text.count(fact)
    assert "catalog-host/good-key" in text  # the message is not cut mid-word ("catalog-")
    command = re.search(r'id="resume-command">(.*?)</code>', dom)
    assert command and "--from-stage staging" in command.group(1) and str(keyauth.run_dir) in command.group(1)
    skipped = [v["message"] for s, v in keyauth.ledger["stages"].items() if v["outcome"] == "skipped"]
    assert skipped and all(m == "gate closed: staging failed" for m in skipped)


def test_failing_page_screenshot_for_the_readme(keyauth: PlanRun, module_tmp: Path) -> None:
    png = screenshot(keyauth.run_dir / "signoff.html", module_tmp / "signoff-failed.png", height=1600)
    assert not is_blank(png)
    if UPDATE_DOCS:
        (DOCS / "signoff-failed.png").write_bytes(png.read_bytes())


def test_a_refused_stage_leaves_the_earlier_run_byte_identical(keyauth: PlanRun, module_tmp: Path) -> None:
    before = snapshot(keyauth.run_dir)
    again = run_plan(module_tmp, keyauth.plan, "--stage", "shift", run_dir=keyauth.run_dir)
    assert again.returncode == 4, again.output[-2000:]
    assert "staging (failed)" in again.output
    assert snapshot(keyauth.run_dir) == before


def test_lf_after_a_failed_staging_resumes_from_staging(keyauth: PlanRun, module_tmp: Path) -> None:
    # --lf needs pytest's cache provider, which the shared helper switches off: the command is built here
    command = [c for c in suites_command(keyauth.plan, keyauth.run_dir, "--lf", "-o", f"cache_dir={module_tmp / 'c'}")
               if c not in ("-p", "no:cacheprovider")]
    proc = subprocess.run(command, cwd=ROOT, env=plan_env(keyauth.work_dir), capture_output=True, text=True,
                          timeout=300)
    again = PlanRun(keyauth.plan, proc.returncode, proc.stdout + proc.stderr, keyauth.run_dir, keyauth.work_dir)
    assert "test_01_preflight" not in again.output and "suites/test_05_staging.py" in again.output
    assert again.returncode == 1  # the fault is still there: staging fails again, from its own checks
    assert again.verdict("preflight") == keyauth.verdict("preflight")  # earlier verdicts untouched
    assert again.verdict("staging")["outcome"] == "failed"
    assert again.leftovers() == []


# ---- a failing shift with a webhook receiver on 127.0.0.1 ---------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def y5xx(module_tmp: Path, receiver: Receiver) -> PlanRun:
    return run_plan(module_tmp, plan_copy(module_tmp, "plans/scenarios/y-5xx.yaml", webhook=receiver.url))


def test_webhook_gets_one_call_per_stage_verdict_and_per_rollback(y5xx: PlanRun, receiver: Receiver) -> None:
    assert y5xx.returncode == 1, y5xx.output[-3000:]
    stages = [b for b in receiver.bodies if b["event"] == "stage"]
    in_order = [s for s in STAGES if s in y5xx.ledger["stages"]]
    assert [b["stage"] for b in stages] == in_order  # one per verdict, in run order
    assert {b["stage"]: b["verdict"] for b in stages} == y5xx.outcomes()
    rollbacks = [b for b in receiver.bodies if b["event"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["figures"]["y_hits_after"] == 0
    final = [b for b in receiver.bodies if b["event"] == "run"]
    assert len(final) == 1 and final[0]["verdict"] == "failed" and final[0]["exit_code"] == 1
    assert all(b["plan"] == "y-5xx" and b["report"].endswith("signoff.html") for b in receiver.bodies)


def test_failing_shift_page_names_the_gate_node_figure_and_limit(y5xx: PlanRun) -> None:
    dom, text = dom_text(y5xx)
    headline = headline_of(dom)
    assert len(headline) < 200 and headline.startswith("shift: gate failed at "), headline
    assert re.search(r"on y\d", headline), headline
    assert re.search(r"[\d.]+ %.*, threshold <= [\d.]+ %|ms, threshold <= |\([\d.]+ %\), over the [\d.]+ % limit",
                     headline), headline
    assert "--from-stage shift" in text and "Rollback evidence" in text
    assert "\u2717" in text  # the failed threshold, marked as k6 marks it
    assert text.count(headline) == 1


# ---- the config freeze fails: what changed on X, decK-style ------------------------------------------


@pytest.fixture(scope="module")
def freeze(module_tmp: Path) -> PlanRun:
    return run_plan(module_tmp, "plans/scenarios/x-config-write.yaml")


def test_freeze_failure_shows_what_changed_on_x_decK_style(freeze: PlanRun) -> None:
    assert freeze.returncode == 1, freeze.output[-3000:]
    dom, text = dom_text(freeze)
    assert "Config drift on X" in text
    assert re.search(r"updating service \S+", text), text[:3000]
    assert re.search(r"Summary: Created \d+ Updated [1-9]\d* Deleted \d+", text)
    headline = headline_of(dom)
    assert len(headline) < 200 and "X's configuration changed since preflight on x" in headline, headline
    command = re.search(r'id="resume-command">(.*?)</code>', dom)
    assert command and "--from-stage" not in command.group(1)  # X changed: the upgrade starts again
