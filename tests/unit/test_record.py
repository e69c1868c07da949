"""build_summary: the run's verdict from the ledger (passed / failed / incomplete) and what it carries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from harness.ledger import STAGES, Ledger, Verdict
from harness.model import Node
from harness.record import RunRecord, build_summary
from harness.report.redact import SecretStore
from harness.summary import Finding, Rollback, RunSummary, StepResult


def ledger_with(tmp_path: Path, outcomes: dict[str, str]) -> Ledger:
    led = Ledger(tmp_path, plan_name="default-dbless", plan_path="plans/default.yaml")
    for i, (stage, outcome) in enumerate(outcomes.items()):
        led.record(Verdict(stage, outcome, 1000.0 + 10 * i, 1000.0 + 10 * i + 2.5,  # type: ignore[arg-type]
                           f"{stage} {outcome}", {"checks": i}))
    return led


def summary(rec: RunRecord, led: Ledger) -> RunSummary:
    return build_summary(rec, led, Path("plans/default.yaml"), git_commit="abc1234")


def test_every_stage_passed_is_a_passed_run(tmp_path: Path) -> None:
    s = summary(RunRecord(), ledger_with(tmp_path, dict.fromkeys(STAGES, "passed")))
    assert s.verdict == "passed"
    assert s.failing_stage is None
    assert [st.name for st in s.stages] == list(STAGES)
    assert all(st.outcome == "passed" for st in s.stages)


def test_the_first_failed_stage_fails_the_run(tmp_path: Path) -> None:
    outcomes = {"preflight": "passed", "backup": "passed", "considerations": "failed", "deploy": "skipped",
                "staging": "failed"}
    s = summary(RunRecord(), ledger_with(tmp_path, outcomes))
    assert s.verdict == "failed"
    assert s.failing_stage == "considerations"
    by_name = {st.name: st for st in s.stages}
    assert by_name["deploy"].outcome == "skipped"
    assert by_name["scale"].outcome == "not-run"
    assert by_name["considerations"].message == "considerations failed"


def test_stages_not_run_make_the_run_incomplete(tmp_path: Path) -> None:
    s = summary(RunRecord(), ledger_with(tmp_path, dict.fromkeys(STAGES[:5], "passed")))
    assert s.verdict == "incomplete"
    assert s.failing_stage is None
    assert [st.name for st in s.stages if st.outcome == "not-run"] == ["scale", "shift", "decommission"]
    assert {st.duration_s for st in s.stages if st.outcome == "not-run"} == {0.0}


def test_a_skipped_stage_without_a_failure_is_incomplete_not_passed(tmp_path: Path) -> None:
    outcomes = dict.fromkeys(STAGES, "passed") | {"scale": "skipped"}
    assert summary(RunRecord(), ledger_with(tmp_path, outcomes)).verdict == "incomplete"


def test_an_empty_ledger_is_incomplete(tmp_path: Path) -> None:
    s = summary(RunRecord(), Ledger(tmp_path, plan_name="p", plan_path="p.yaml"))
    assert s.verdict == "incomplete"
    assert all(st.outcome == "not-run" for st in s.stages)
    assert s.plan_name == "p"


def test_times_durations_and_figures_come_from_the_ledger(tmp_path: Path) -> None:
    s = summary(RunRecord(), ledger_with(tmp_path, {"preflight": "passed", "backup": "passed"}))
    assert s.started == dt.datetime.fromtimestamp(1000.0, dt.UTC)
    assert s.finished == dt.datetime.fromtimestamp(1012.5, dt.UTC)
    assert s.stages[0].duration_s == 2.5
    assert s.stages[1].key_figure == "checks: 1"


def test_long_figures_are_cut_and_messages_kept_whole_up_to_whole_lines(tmp_path: Path) -> None:
    led = Ledger(tmp_path, plan_name="p", plan_path="p.yaml")
    led.record(Verdict("preflight", "failed", 1.0, 2.0, "m" * 3000, {"a": "f" * 500}))
    lines = "\n".join(f"route-{i}/good-key: status: X=200 | Y=401" for i in range(300))
    led.record(Verdict("backup", "failed", 1.0, 2.0, lines, {}))
    first, second = summary(RunRecord(), led).stages[:2]
    assert len(first.key_figure) == 200
    assert first.message == "m" * 3000  # a message that fits is never cut (the issue: cut at "catalog-")
    kept = second.message.splitlines()
    assert kept[:-1] == lines.splitlines()[:len(kept) - 1]  # whole lines only
    assert kept[-1].startswith("... and ") and "more line(s)" in kept[-1]
    assert len(second.message) <= 4000


def test_interrupted_and_not_judged_stages_give_their_own_verdicts(tmp_path: Path) -> None:
    led = ledger_with(tmp_path, {s: "passed" for s in STAGES[:6]})
    led.record(Verdict("shift", "interrupted", 1.0, 2.0, "interrupted (Ctrl-C) after 2 of 7 checks", {}, "interrupted"))
    s = summary(RunRecord(), led)
    assert (s.verdict, s.failing_stage) == ("interrupted", "shift")
    assert "--from-stage shift" in s.resume_command and "interrupted during shift" in s.next_step
    led.record(Verdict("shift", "failed", 1.0, 2.0, "test_splitter: could not run HAProxy", {}, "not-judged"))
    s = summary(RunRecord(), led)
    assert s.verdict == "not-judged"
    assert s.headline == "shift could not be judged at test_splitter: could not run HAProxy"


def test_the_record_fills_names_versions_nodes_and_evidence(tmp_path: Path) -> None:
    rec = RunRecord(plan_name="from-record", mode="hybrid", x_version="3.4.2", y_version="3.8.1",
                    splitter="haproxy")
    rec.add_node(Node("x1", "emulator://3.4.2", "x", "dp", "3.4.2", None, "http://127.0.0.1:8000", None))
    y_url = "http://127.0.0.1:9001"
    rec.add_node(Node("y1", y_url, "y", "dbless", None, y_url, None, None))
    rec.steps.append(StepResult(weight_y=5, requests=1000, share_y=0.05, errors_x=0, errors_y=0,
                                error_rate_x=0.0, error_rate_y=0.0, p50_x=1.0, p50_y=1.0, p99_x=2.0,
                                p99_y=2.0, outcome="pass"))
    rec.findings.append(Finding("pcre2", "warning", "PCRE2"))
    rec.rollback = Rollback("step 5 failed", 0.4, 50, 0)
    s = summary(rec, ledger_with(tmp_path, {"preflight": "passed"}))
    assert (s.plan_name, s.mode, s.x_version, s.y_version, s.splitter) == (
        "from-record", "hybrid", "3.4.2", "3.8.1", "haproxy")
    assert [(n.name, n.role, n.version) for n in s.nodes] == [
        ("x1", "dp", "3.4.2"), ("y1", "dbless", "unknown")]
    assert len(s.steps) == 1 and s.findings[0].id == "pcre2" and s.rollback is not None
    assert (s.plan_path, s.git_commit) == ("plans/default.yaml", "abc1234")


def test_an_empty_record_falls_back_to_the_ledger_and_defaults(tmp_path: Path) -> None:
    s = summary(RunRecord(), ledger_with(tmp_path, {"preflight": "passed"}))
    assert (s.plan_name, s.mode, s.x_version, s.y_version, s.splitter) == (
        "default-dbless", "dbless", "unknown", "unknown", "none")


def test_the_secret_store_skips_empty_values_and_never_shows_one() -> None:
    store = SecretStore()
    store.add(["k1", "", None, "k2"])
    store.add({"k1"})
    assert store.values() == frozenset({"k1", "k2"})
    assert "k1" not in repr(store) and store.redactor.text("k1 k2") == "<redacted> <redacted>"


def test_what_next_names_what_to_fix_and_a_freeze_failure_starts_again(tmp_path: Path) -> None:
    led = ledger_with(tmp_path, {s: "passed" for s in STAGES[:4]})
    led.record(Verdict("staging", "failed", 1.0, 2.0, "test_differential_requests: behaviour difference: Y answers "
                       "differently from X (y1 vs x1):\n  a/good-key: status: X=200 | Y=401", {}, "check"))
    s = summary(RunRecord(), led)
    assert s.next_step.startswith("Y answers differently from X: fix Y or its configuration")
    assert s.resume_command.endswith(f"--from-stage staging --run-dir {tmp_path}")
    led.record(Verdict("staging", "failed", 1.0, 2.0, "test_x_config_unchanged: config drift: X's configuration "
                       "changed since preflight on x1 (the config-write freeze did not hold)", {}, "check"))
    s = summary(RunRecord(), led)
    assert "restore the backup on X, then start the upgrade again" in s.next_step
    assert s.resume_command == ".venv/bin/pytest suites/ --plan plans/default.yaml"  # a fresh run, not a resume


def test_findings_are_grouped_by_rule_with_entities_by_name_and_ids_resolved() -> None:
    from harness.compat import Finding as RuleFinding
    from harness.record import entity_name, findings_text, report_findings

    config = {"services": [{"id": "s-1", "name": "orders"}],
              "routes": [{"id": "c4b51c96-0000", "name": "health-check", "service": {"id": "s-1"}}],
              "consumers": [{"id": "u-1", "username": "alice"}]}
    hits = [
        RuleFinding("regex-path-without-tilde", "error", "routes['health-check']", "breaks", "add ~", "3.0.0", "T"),
        RuleFinding("regex-path-without-tilde", "error", "routes['orders-v1']", "breaks", "add ~", "3.0.0", "T"),
        RuleFinding("auth-401", "warning", "plugins['key-auth@route:c4b51c96-0000']", "b", "update", "3.6.0", "A"),
        RuleFinding("auth-401", "warning", "plugins['key-auth@route:c4b51c96-0000']", "b", "update", "3.6.0", "A"),
        RuleFinding("auth-401", "info", "plugins['key-auth@consumer:u-1+service:orders'].config.x", "b", "u",
                    "3.6.0", "A"),
        RuleFinding("via", "warning", "node", "b", "u", "3.8.0", "V"),
    ]
    found = report_findings(hits, config, {"via": "our clients ignore Via"})
    assert [f.id for f in found] == ["regex-path-without-tilde", "auth-401", "via"]
    assert found[0].entities == ("route health-check", "route orders-v1")
    assert found[1].entities == ("plugin key-auth on route health-check",
                                 "plugin key-auth on consumer alice, service orders (config.x)")
    assert found[1].severity == "warning" and found[1].introduced_in == "3.6.0"
    assert found[2].accepted == "our clients ignore Via" and found[2].entities == ("the node (kong.conf or version)",)
    assert entity_name("plugins['cors@global']") == "plugin cors global"
    text = "\n".join(findings_text(found))
    assert "ERROR   regex-path-without-tilde (Kong 3.0.0): T" in text
    assert "on: route health-check, route orders-v1" in text and "[accepted: our clients ignore Via]" in text
