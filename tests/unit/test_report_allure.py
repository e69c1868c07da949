"""Allure: categories sort our messages, environment.properties, and redacted attachments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import allure_commons
import pytest
from allure_commons.types import AttachmentType
from allure_commons.utils import format_exception

from harness import messages
from harness.errors import NodeUnreachable, PlanError, WaitTimeout
from harness.report import allure as report
from harness.report.redact import MARK, SecretStore
from harness.report.sample import sample_summary
from harness.summary import NodeInfo

KEY = "consumer-key-7f3a9"
TOKEN = "admin-token-2b8c"


def _message(exc: BaseException) -> str:
    """The statusDetails.message allure-pytest writes for an exception."""
    return format_exception(type(exc), exc)


def test_categories_file(tmp_path: Path) -> None:
    path = report.write_categories(tmp_path)
    data = json.loads(path.read_text())
    assert [c["name"] for c in data] == [
        "Gate failed", "Config drift", "Behaviour difference", "Could not judge", "Infrastructure problem"]
    for category in data:
        assert category["matchedStatuses"]
        assert "(?s)" not in category["messageRegex"]  # JavaScript has no inline flags


@pytest.mark.parametrize(
    ("exc", "status", "category"),
    [
        (AssertionError(messages.gate_failed("step 3 (Y 50%): Y error rate 6.1% > 1%") + "\nassert False"),
         "failed", "Gate failed"),
        (pytest.fail.Exception(messages.config_drift("X config hash changed: abc -> def")), "failed",
         "Config drift"),
        (AssertionError(messages.behaviour_difference("GET /orders: X 200, Y 404")), "failed",
         "Behaviour difference"),
        (NodeUnreachable("x-dp-1: no answer on 127.0.0.1:8001 in 5 s"), "broken", "Infrastructure problem"),
        (WaitTimeout("Y never became ready"), "broken", "Infrastructure problem"),
        (ConnectionRefusedError(111, "Connection refused"), "broken", "Infrastructure problem"),
        (RuntimeError(messages.infrastructure_problem("docker engine gone")), "broken",
         "Infrastructure problem"),
        (AssertionError("assert 1 == 2"), "failed", None),
        (PlanError("steps[2] is 'x'"), "broken", None),
        (AssertionError("note: the gate failed: later in the text"), "failed", None),
        (pytest.fail.Exception("could not judge: at 25 % Y: 12 answers from Y (need 40)"), "failed",
         "Could not judge"),
    ],
)
def test_categories_sort_real_messages(exc: BaseException, status: str, category: str | None) -> None:
    assert report.category_of(_message(exc), status) == category


def test_environment_properties(tmp_path: Path) -> None:
    path = report.write_environment_for(tmp_path, sample_summary(failed=True))
    lines = path.read_text().splitlines()
    # the overview's environment widget: the verdict and why first, then versions, nodes, findings
    assert lines[0] == "verdict=default: Kong 3.4.2 -> 3.8.1: FAILED"
    assert lines[1].startswith("why=shift: gate failed at 50 % Y")
    assert lines[2:7] == [
        "X.version=3.4.2", "Y.version=3.8.1", "mode=hybrid", "splitter=haproxy",
        "plan=default (plans/default.yaml)"]
    assert "node.y-dp-1=Y dp 3.8.1 process emulator://3.8.1 (stopped at the end of the run)" in lines
    assert "git.commit=690edb3" in lines
    finding = next(ln for ln in lines if ln.startswith("finding.KONG-3.0-ROUTE-PATHS="))
    assert "route health-check" in finding and "route orders-v1" in finding


def test_report_name_and_executor_name_the_plan_verdict_and_ci_job(tmp_path: Path) -> None:
    summary = sample_summary(failed=True)
    assert report.report_name(summary) == "default: Kong 3.4.2 -> 3.8.1: FAILED"
    gitlab = report.executor_info({"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example/p/-/jobs/7",
                                   "CI_JOB_NAME": "upgrade", "CI_JOB_ID": "7"}, run_id="r1", report_name="n")
    assert gitlab["buildUrl"] == "https://gitlab.example/p/-/jobs/7" and gitlab["type"] == "gitlab"
    github = report.executor_info({"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r",
                                   "GITHUB_SERVER_URL": "https://github.com"}, run_id="r1", report_name="n")
    assert github["buildUrl"] == "https://github.com/o/r/actions/runs/42"
    local = report.executor_info({}, run_id="r1", report_name="n")
    assert local["type"] == "local" and "buildUrl" not in local
    path = report.write_executor(tmp_path, gitlab)
    assert json.loads(path.read_text())["name"] == "GitLab CI"


def test_stages_are_numbered_parent_suites_in_run_order() -> None:
    from harness.ledger import STAGES

    labels = [dict(report.suite_labels(s, i))["parentSuite"] for i, s in enumerate(STAGES)]
    assert labels == sorted(labels) and labels[0] == "1. preflight" and labels[-1] == "8. decommission"


def test_environment_escapes_properties_syntax(tmp_path: Path) -> None:
    node = NodeInfo("x 1=a:b", "http://127.0.0.1:8001", "x", "dbless", "3.4.2")
    path = report.write_environment(tmp_path, plan="p\\q\nr", mode=" hybrid", x_version="3.4.2",
                                    y_version="3.8.1", splitter="#haproxy", nodes=[node])
    text = path.read_text()
    assert "plan=p\\\\q\\nr\n" in text
    assert "mode=\\ hybrid\n" in text
    assert "node.x\\ 1\\=a\\:b=X dbless 3.4.2 http://127.0.0.1:8001\n" in text
    assert len(text.splitlines()) == 6


class _Capture:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.store = SecretStore()

    @allure_commons.hookimpl
    def attach_data(self, body: Any, name: str, attachment_type: Any, extension: Any) -> None:
        self.items.append({"body": body, "name": name, "type": attachment_type})


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[_Capture]:
    capture = _Capture()
    allure_commons.plugin_manager.register(capture)
    store = SecretStore([KEY, TOKEN])
    report.configure(secrets=store, evidence_dir=tmp_path / "evidence")
    capture.store = store
    try:
        yield capture
    finally:
        allure_commons.plugin_manager.unregister(capture)
        report.configure()


def test_every_attachment_is_redacted(captured: _Capture, tmp_path: Path) -> None:
    report.attach_json("config X", {"consumers": [{"username": "a", "key": "unlisted-key"}], "t": TOKEN})
    report.attach_text("log", f"Kong-Admin-Token: {TOKEN}\nok")
    report.attach_html("parity diff", f"<p>{KEY}</p>")
    report.attach_csv("probe step 1", [[0.1, "x", KEY], [0.2, "y", "ok"]], header=["t", "node", "key"])
    source = tmp_path / "backup.json"
    source.write_text(json.dumps({"credentials": [{"key": KEY}]}))
    report.attach_file(source)
    report.attach_text(f"name with {KEY}", "body")

    assert [i["type"] for i in captured.items] == [
        AttachmentType.JSON, AttachmentType.TEXT, AttachmentType.HTML, AttachmentType.CSV,
        AttachmentType.JSON, AttachmentType.TEXT]
    for item in captured.items:
        blob = item["body"] if isinstance(item["body"], bytes) else item["body"].encode()
        for secret in (KEY, TOKEN, "unlisted-key"):
            assert secret.encode() not in blob, item["name"]
            assert secret not in item["name"]
    assert json.loads(captured.items[0]["body"])["consumers"][0]["key"] == MARK
    assert b"&lt;redacted&gt;" in captured.items[2]["body"]
    assert captured.items[3]["body"].decode().splitlines() == ["t,node,key", f"0.1,x,{MARK}", "0.2,y,ok"]

    evidence = sorted(p.name for p in (tmp_path / "evidence").iterdir())
    assert evidence == ["backup.json", "config-X.json", "log.txt", "name-with-redacted.txt",
                        "parity-diff.html", "probe-step-1.csv"]
    for path in (tmp_path / "evidence").iterdir():
        assert KEY.encode() not in path.read_bytes() and TOKEN.encode() not in path.read_bytes()


def test_evidence_names_do_not_overwrite(captured: _Capture, tmp_path: Path) -> None:
    first = report.attach_text("gate figures", "1")
    second = report.attach_text("gate figures", "2")
    assert first and second and first != second
    assert (first.read_text(), second.read_text()) == ("1", "2")


def test_secrets_learnt_later_in_the_run_store_count_at_once(captured: _Capture) -> None:
    captured.store.add(["late-secret-99"])
    report.attach_text("t", "late-secret-99 and " + KEY)
    assert captured.items[-1]["body"] == f"{MARK} and {MARK}".encode()


def test_without_a_listener_attach_is_harmless() -> None:
    report.configure()  # no evidence folder, and no allure listener (no --alluredir)
    assert report.attach_text("nothing listens", "x") is None
