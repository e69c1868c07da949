"""The sign-off page: verdict, failing stage, versions, stage table, charts inline, nothing fetched."""

from __future__ import annotations

import base64
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from harness.report.redact import find_secrets
from harness.report.sample import sample_summary
from harness.report.signoff import render, write_signoff
from harness.summary import RunSummary, StageResult


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: Path) -> _Collect:
    parser = _Collect()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _text(page: Path) -> str:
    return " ".join(" ".join(_parse(page).text).split())


def _render(summary: RunSummary, tmp_path: Path) -> Path:
    """The page without charts (fast): for tests about text, not pictures."""
    page = tmp_path / "page.html"
    page.write_text(render(summary, []), encoding="utf-8")
    return page


def test_failed_run_names_verdict_failing_stage_and_versions(tmp_path: Path) -> None:
    page = write_signoff(tmp_path, sample_summary(failed=True))
    assert page == tmp_path / "signoff.html"
    text = _text(page)
    assert "FAILED" in text
    # the headline is the failing check's own line: the check, the nodes, the figure and the limit
    assert "shift: gate failed at 50 % Y on y-dp-1, y-dp-2: error_rate_y 6.10 % <= 1.00 %" in text  # (sample's)
    assert "3.4.2" in text and "3.8.1" in text
    assert "Rollback evidence" in text and "seconds until all traffic proven on X" in text
    for stage in ("preflight", "backup", "provision", "parity", "shift", "cutover", "soak", "decommission"):
        assert stage in text
    assert "not-run" in text
    assert "690edb3" in text and "plans/default.yaml" in text


def test_passed_run_has_no_rollback_and_says_passed(tmp_path: Path) -> None:
    text = _text(write_signoff(tmp_path, sample_summary()))
    assert "PASSED" in text and "passed every stage" in text
    assert "Rollback evidence" not in text
    assert "only allowed differences" in text
    assert "KONG-3.0-ROUTE-PATHS" in text


def test_charts_are_embedded_and_saved_beside_the_page(tmp_path: Path) -> None:
    page = write_signoff(tmp_path, sample_summary())
    images = [a for tag, a in _parse(page).tags if tag == "img"]
    assert len(images) == 3
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert attrs["alt"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "signoff-error-rate.png", "signoff-latency.png", "signoff-share.png"]
    assert RunSummary.from_json((tmp_path / "summary.json").read_text()) == sample_summary()


def test_no_external_url_at_all(tmp_path: Path) -> None:
    page = write_signoff(tmp_path, sample_summary(failed=True))
    html = page.read_text()
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html
    for tag, attrs in _parse(page).tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
    metas = [a for tag, a in _parse(page).tags if tag == "meta"]
    csp = [a for a in metas if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and (csp[0]["content"] or "").startswith("default-src 'none'; img-src data:")


def test_a_url_in_the_data_is_text_never_a_link(tmp_path: Path) -> None:
    base = sample_summary()
    node = replace(base.nodes[0], spec="http://127.0.0.1:8001")
    page = _render(replace(base, nodes=(node, *base.nodes[1:])), tmp_path)
    assert "http://127.0.0.1:8001" in _text(page)
    for _tag, attrs in _parse(page).tags:
        assert not any("http" in (v or "") for k, v in attrs.items() if k != "content"), attrs


def test_every_string_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>&'
    base = sample_summary(failed=True)
    stages = tuple(replace(s, message=evil) if s.name == "shift" else s for s in base.stages)
    summary = replace(base, plan_name=evil, x_version=evil, stages=stages, splitter="<b>haproxy</b>")
    page = _render(summary, tmp_path)
    html = page.read_text()
    assert "<script>" not in html and "<b>haproxy" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    assert evil in _text(page)  # what a reader sees is the text itself
    assert "script" not in [tag for tag, _ in _parse(page).tags]


def test_no_steps_page_says_so(tmp_path: Path) -> None:
    base = sample_summary(failed=True)
    stages = (StageResult("preflight", "failed", 0.4, "", "X 2.8.4 -> Y 3.9.0 not allowed in hybrid"),)
    summary = replace(base, steps=(), rollback=None, stages=stages, failing_stage="preflight", parity=None,
                      headline="")
    text = _text(write_signoff(tmp_path, summary))
    assert "No traffic steps ran" in text and "Stopped at stage preflight" in text
    assert "Config parity was not checked" in text


def test_incomplete_run(tmp_path: Path) -> None:
    text = _text(_render(replace(sample_summary(), verdict="incomplete"), tmp_path))
    assert "INCOMPLETE" in text and "did not finish" in text


def test_secrets_given_never_reach_the_page_or_summary(tmp_path: Path) -> None:
    secrets = ["consumer-key-7f3a9", 'tok"en<&>']
    base = sample_summary(failed=True)
    stages = tuple(replace(s, message=f"{s.message} key={secrets[0]} t={secrets[1]}") for s in base.stages)
    write_signoff(tmp_path, replace(base, stages=stages), secrets=secrets)
    assert find_secrets(tmp_path, secrets) == []
    assert "&lt;redacted&gt;" in (tmp_path / "signoff.html").read_text()
    assert "<redacted>" in (tmp_path / "summary.json").read_text()


def _between(html: str, start: str, end: str) -> str:
    return html.split(start, 1)[1].split(end, 1)[0]


def test_nodes_name_provider_and_state_at_the_end(tmp_path: Path) -> None:
    html = _render(sample_summary(), tmp_path).read_text()
    nodes = _between(html, 'id="nodes"', "</table>")
    for name in ("x-cp", "x-dp-1", "y-cp", "y-dp-1", "y-dp-2"):
        assert f"<td>{name}</td>" in nodes
    assert "state at the end" in nodes and "stopped at the end of the run" in nodes and "process" in nodes


def test_findings_list_each_rule_once_with_its_entities_by_name(tmp_path: Path) -> None:
    html = _render(sample_summary(), tmp_path).read_text()
    findings = _between(html, 'id="findings"', "</table>")
    assert findings.count("KONG-3.0-ROUTE-PATHS") == 1
    assert "<li>route health-check</li><li>route orders-v1</li>" in findings
    assert "since Kong" in findings and "3.0.0" in findings


def test_failing_page_says_each_fact_once_with_what_next_and_an_approval_block(tmp_path: Path) -> None:
    summary = sample_summary(failed=True)
    page = _render(summary, tmp_path)
    html = page.read_text()
    assert 'id="resume-command">.venv/bin/pytest suites/ --plan plans/default.yaml --from-stage shift' in html
    assert "What next" in html and "Fix what shift reports" in html
    approval = _between(html, 'id="approval"', "</section>")
    for word in ("approver", "decision", "date", "signature"):
        assert word in approval
    # the stage's full message is shown once (in its row); the rollback box points at the step instead
    message = next(st.message for st in summary.stages if st.name == "shift")
    assert _text(page).count(message) == 1
    assert "the gate at 50 % Y" in _between(html, 'id="rollback"', "</table>")


def test_headlines_are_cut_between_sentences_under_200_characters() -> None:
    from harness.ledger import Verdict
    from harness.record import headline

    long = ("test_differential_requests: behaviour difference: Y answers differently from X:\n  GET /orders: "
            "status X=200 | Y=404; body differs (alpha 0.01, practical limit 1); " + "more words " * 30)
    line = headline(Verdict("staging", "failed", 0.0, 1.0, long, {}, "check"))
    assert len(line) < 200
    assert line.startswith("staging failed at test_differential_requests: behaviour difference: Y answers "
                           "differently from X: GET /orders: status X=200 | Y=404")
    assert line.endswith("\u2026") and line.count("(") == line.count(")")


def test_config_drift_and_parity_read_as_deck_diffs(tmp_path: Path) -> None:
    from harness.config import normalise
    from harness.config_diff import diff
    from harness.summary import ParitySummary

    before = {"_format_version": "3.0", "services": [
        {"name": "orders", "url": "http://127.0.0.1:9/orders", "retries": 5},
        {"name": "gone", "url": "http://127.0.0.1:9/gone"}]}
    after = {"_format_version": "3.0", "services": [
        {"name": "orders", "url": "http://127.0.0.1:9/orders", "retries": 6},
        {"name": "new", "url": "http://127.0.0.1:9/new"}]}
    drift = ParitySummary.of(diff(normalise(before), normalise(after)), title="Config drift on X (x1): backup -> now")
    assert "updating service orders" in drift.lines
    assert "  retries: 5 -> 6" in drift.lines
    assert "creating service new" in drift.lines and "deleting service gone" in drift.lines
    assert drift.lines[-1] == "Summary: Created 1 Updated 1 Deleted 1"
    html = _render(replace(sample_summary(failed=True), drift=drift), tmp_path).read_text()
    assert "Config drift on X (x1): backup -&gt; now" in html and "retries: 5 -&gt; 6" in html


def test_thresholds_read_as_k6_prints_them_and_the_headline_prefers_a_measured_figure() -> None:
    from harness.gates import GateCheck, GateResult
    from harness.ledger import Verdict
    from harness.record import headline
    from harness.report.terminal import threshold_lines, thresholds_of
    from harness.summary import NodeInfo

    gate = GateResult("fail", (
        GateCheck("samples_y", 250, 40, True, "250 answers from Y (need 40)"),
        GateCheck("sequential_error_rate_limit", 3.02, 3.0, False,
                  "sequential gate (error_rate_limit; looks every 0.25 s): after 3.02 s (12 looks): Y failed 12 of "
                  "397 (3.02 %), over the 1.00 % limit: e-value 120 >= 1/alpha = 100 (anytime p 0.0083)",
                  "fail", p_value=0.0083),
        GateCheck("error_rate_y[balancer]", 0.0302, 0.01, False, "balancer: Y 12 of 397 answers 5xx", "fail"),
        GateCheck("p99_y", 12.5, 500.0, True, "Y: p99 12.5"),
    ))
    ths = thresholds_of(gate)
    lines = threshold_lines(ths)
    assert any("\u2713 samples_y" in ln and "250 >= 40" in ln for ln in lines), lines
    assert any("\u2717 error_rate_y[balancer]" in ln and "3.02 % <= 1.00 %" in ln for ln in lines), lines
    assert any("\u2713 p99_y" in ln and "12.5 ms <= 500.0 ms" in ln for ln in lines), lines
    step = replace(sample_summary(failed=True).steps[-1], thresholds=ths, weight_y=100)
    nodes = (NodeInfo("y1", "emulator://3.8.1", "y", "dbless", "3.8.1"),)
    line = headline(Verdict("shift", "failed", 0, 1, "test_shift_step[y=100%]: gate failed: ...", {}, "check"),
                    (step,), nodes)
    assert line == "shift: gate failed at 100 % Y on y1: error_rate_y[balancer] 3.02 %, threshold <= 1.00 % (+1 more)"
    only_sequential = replace(step, thresholds=tuple(t for t in ths if t.name.startswith("sequential")))
    line = headline(Verdict("shift", "failed", 0, 1, "x: y", {}, "check"), (only_sequential,), nodes)
    assert line == ("shift: gate failed at 100 % Y on y1: sequential_error_rate_limit: Y failed 12 of 397 (3.02 %), "
                    "over the 1.00 % limit")
