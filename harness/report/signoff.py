"""The one-page sign-off summary a release manager reads: ``write_signoff(run_dir, summary)``.

One self-contained HTML file (inline CSS, charts embedded as base64 PNG, no URL that a browser
would fetch, and a Content-Security-Policy that forbids any fetch anyway), the charts also saved as
PNG files beside it, and the summary itself as ``summary.json``. Every string from the run passes
through ``html.escape``; the finished page passes through the redactor when secrets are given.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from harness.report.charts import Chart, charts_for
from harness.report.redact import Redactor
from harness.summary import ParitySummary, RunSummary, StepResult

PAGE = "signoff.html"
SUMMARY_JSON = "summary.json"
CHART_PREFIX = "signoff-"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 "DejaVu Sans",Arial,Helvetica,sans-serif;color:#1d1d1f;margin:0;background:#f4f5f7}
main{max-width:1320px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #d0d4da;padding-bottom:4px}
.banner{padding:16px 20px;border-radius:6px;color:#fff;margin-bottom:14px}
.banner .verdict{font-size:28px;font-weight:bold;letter-spacing:1px}
.banner p{margin:4px 0 0;font-size:15px}
.passed{background:#1e7e34}.failed{background:#b02a37}.incomplete{background:#a86b00}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d0d4da;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#e9ecef;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}
.fact{background:#fff;border:1px solid #d0d4da;border-radius:4px;padding:6px 10px}
.fact b{display:block;font-size:11px;color:#5a6270;text-transform:uppercase;letter-spacing:.5px}
.fact span{font-size:15px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:bold;color:#fff}
.o-passed,.o-pass{background:#1e7e34}.o-failed,.o-fail{background:#b02a37}
.o-skipped,.o-inconclusive{background:#a86b00}.o-not-run{background:#7a828c}
.s-error{background:#b02a37}.s-warning{background:#a86b00}.s-info{background:#33689e}
tr.row-failed td{background:#fbe9eb}
.charts figure{margin:10px 0 0}
.charts img{display:block;width:100%;height:auto;background:#fff;border:1px solid #d0d4da}
.charts .pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
pre{background:#fff;border:1px solid #d0d4da;padding:8px;white-space:pre-wrap;font-size:12px;margin:6px 0}
.muted{color:#5a6270}
footer{margin-top:28px;font-size:12px;color:#5a6270}
.not-judged,.interrupted{background:#6f42c1}.o-interrupted,.o-paused{background:#6f42c1}
.next{background:#fff;border:2px solid #33689e;border-radius:6px;padding:10px 14px;margin:12px 0}
.next h2{border:0;margin:0 0 6px;padding:0}
.next code{display:block;background:#f4f5f7;border:1px solid #d0d4da;padding:6px 8px;margin-top:6px;
  font-size:13px;word-break:break-all;white-space:pre-wrap}
.approval{background:#fff;border:1px solid #1d1d1f;border-radius:6px;padding:10px 14px;margin-top:14px;
  break-inside:avoid;page-break-inside:avoid}
.approval table td{height:34px}.approval .box{display:inline-block;width:14px;height:14px;
  border:1px solid #1d1d1f;margin:0 6px -2px 14px}
ul.entities{margin:0;padding-left:18px}
.th-pass{color:#1e7e34}.th-fail{color:#b02a37;font-weight:bold}.th-inconclusive{color:#a86b00}
details summary{cursor:pointer;color:#33689e}
@media print{body{background:#fff}main{max-width:none;padding:0}.banner{-webkit-print-color-adjust:exact;
  print-color-adjust:exact}.charts{break-inside:avoid}h2{break-after:avoid}details{display:block}}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _badge(kind: str, text: str) -> str:
    return f'<span class="badge {_e(kind)}">{_e(text)}</span>'


def _table(head: Sequence[str], rows: Iterable[str]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _banner(s: RunSummary) -> str:
    upgrade = f"Kong {s.x_version} \u2192 {s.y_version} ({s.mode}), plan {s.plan_name}"
    if s.verdict == "passed":
        line = f"The upgrade {upgrade} passed every stage."
    elif s.headline:
        line = s.headline
    elif s.verdict == "incomplete":
        line = f"The run of {upgrade} did not finish; stages not run are listed below."
    else:
        line = f"Stopped at stage {s.failing_stage or 'unknown'}."
    word = {"not-judged": "COULD NOT JUDGE"}.get(s.verdict, s.verdict.upper())
    sub = f'<p class="upgrade">{_e(upgrade)}</p>' if s.verdict != "passed" else ""
    return (
        f'<section class="banner {_e(s.verdict)}" id="verdict">'
        f'<div class="verdict">{_e(word)}</div><p class="headline" id="headline">{_e(line)}</p>{sub}</section>'
    )


def _next(s: RunSummary) -> str:
    """What to do next, and the exact command that resumes the run."""
    command = f"<code id=\"resume-command\">{_e(s.resume_command)}</code>" if s.resume_command else ""
    return (f'<section class="next" id="next"><h2>What next</h2><p>{_e(s.next_step)}</p>{command}</section>')


def _approval(s: RunSummary) -> str:
    """A block to print and sign: approver, decision, date (filled in by hand or in the PDF)."""
    rows = (
        "<tr><th style=\"width:22%\">approver (name, role)</th><td></td></tr>"
        "<tr><th>decision</th><td><span class=box></span>approve the upgrade<span class=box></span>"
        "reject<span class=box></span>approve with conditions (below)</td></tr>"
        "<tr><th>conditions / notes</th><td></td></tr>"
        "<tr><th>date</th><td></td></tr><tr><th>signature</th><td></td></tr>"
    )
    return (f'<section class="approval" id="approval"><h2>Approval</h2><p class="muted">Run '
            f"{_e(Path(s.run_dir).name or s.plan_name)}, verdict {_e(s.verdict.upper())}, commit "
            f"{_e(s.git_commit)}.</p><table>{rows}</table></section>")


def _facts(s: RunSummary) -> str:
    facts = [
        ("X version (from)", s.x_version), ("Y version (to)", s.y_version), ("mode", s.mode),
        ("splitter", s.splitter), ("plan", f"{s.plan_name} ({s.plan_path})"),
        ("git commit", s.git_commit), ("started", _time(s.started)),
        ("finished", f"{_time(s.finished)} ({_duration(s.duration_s)})"),
    ]
    cells = "".join(f'<div class="fact"><b>{_e(k)}</b><span>{_e(v)}</span></div>' for k, v in facts)
    return f'<div class="facts" id="facts">{cells}</div>'


def _nodes(s: RunSummary) -> str:
    if not s.nodes:
        return '<p class="muted">No nodes were recorded.</p>'
    rows = (
        f"<tr><td>{_e(n.name)}</td><td>{_e(n.cluster.upper())}</td><td>{_e(n.role)}</td>"
        f"<td>{_e(n.version)}</td><td>{_e(n.provider or '-')}</td><td>{_e(n.state or '-')}</td>"
        f"<td>{_e(n.spec)}</td></tr>"
        for n in sorted(s.nodes, key=lambda n: (n.cluster, n.name))
    )
    return _table(("node", "cluster", "role", "version", "provider", "state at the end", "spec"), rows)


def _stages(s: RunSummary) -> str:
    if not s.stages:
        return '<p class="muted">No stage ran.</p>'
    rows = []
    for i, st in enumerate(s.stages, start=1):
        cls = ' class="row-failed"' if st.outcome in ("failed", "interrupted", "paused") else ""
        took = "" if st.outcome == "not-run" else _duration(st.duration_s)
        if st.name == s.failing_stage and st.message:
            # the full text once, here; the banner holds its first line
            message = f"<details><summary>full message</summary><pre>{_e(st.message)}</pre></details>"
        else:
            message = _e(st.message)
        rows.append(
            f"<tr{cls}><td class=num>{i}</td><td>{_e(st.name)}</td>"
            f"<td>{_badge('o-' + st.outcome, st.outcome)}</td><td class=num>{_e(took)}</td>"
            f"<td>{_e(st.key_figure)}</td><td>{message}</td></tr>"
        )
    return _table(("#", "stage", "outcome", "duration", "key figure", "message"), rows)


def _steps_table(steps: Sequence[StepResult]) -> str:
    rows = (
        f"<tr><td class=num>{i}</td><td class=num>{st.weight_y:g}%</td><td class=num>{st.requests:,}</td>"
        f"<td class=num>{100 * st.share_y:.1f}%</td>"
        f"<td class=num>{_pct(st.error_rate_x)} ({st.errors_x})</td>"
        f"<td class=num>{_pct(st.error_rate_y)} ({st.errors_y})</td>"
        f"<td class=num>{_ms(st.p50_x)} / {_ms(st.p50_y)}</td>"
        f"<td class=num>{_ms(st.p99_x)} / {_ms(st.p99_y)}</td>"
        f"<td>{_badge('o-' + st.outcome, st.outcome)}</td><td>{_thresholds(st)}</td></tr>"
        for i, st in enumerate(steps, start=1)
    )
    return _table(
        ("step", "Y weight", "requests", "Y share", "X errors", "Y errors", "p50 X / Y (ms)",
         "p99 X / Y (ms)", "gate", "thresholds (observed vs limit)"),
        rows,
    )


def _thresholds(st: StepResult) -> str:
    if not st.thresholds:
        return _e(st.reason)
    marks = {"pass": "\u2713", "fail": "\u2717", "inconclusive": "?"}
    return "<br>".join(
        f'<span class="th-{_e(t.outcome)}">{marks[t.outcome]} {_e(t.name)}: {_e(t.observed)} {_e(t.limit)}</span>'
        for t in st.thresholds
    )


def _img(chart: Chart) -> str:
    data = base64.b64encode(chart.path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(chart.title)}" title="{_e(chart.title)}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def _traffic(s: RunSummary, charts: Sequence[Chart]) -> str:
    by_name = {c.name: c for c in charts}
    if "no-steps" in by_name:
        chart = _img(by_name["no-steps"])
        return f'<p class="muted">No traffic steps ran.</p><div class="charts">{chart}</div>'
    pair = "".join(_img(by_name[n]) for n in ("share", "error-rate") if n in by_name)
    latency = _img(by_name["latency"]) if "latency" in by_name else ""
    return f'{_steps_table(s.steps)}<div class="charts"><div class="pair">{pair}</div>{latency}</div>'


def _diff_block(p: ParitySummary) -> str:
    verdict = "no differences" if p.clean and not p.allowed else (
        "only allowed differences" if p.clean else "differences found")
    counts = (
        f"<p><b>{_e(verdict)}</b>: {p.added} added, {p.removed} removed, {p.changed} changed, "
        f"{p.allowed} allowed by the plan.</p>"
    )
    lines = f'<pre class="deck">{_e(chr(10).join(p.lines))}</pre>' if p.lines else ""
    return counts + lines


def _parity(s: RunSummary) -> str:
    if s.parity is None:
        return '<p class="muted">Config parity was not checked.</p>'
    return _diff_block(s.parity)


def _drift(s: RunSummary) -> str:
    if s.drift is None:
        return ""
    return f'<h2 id="drift">{_e(s.drift.title)}</h2>{_diff_block(s.drift)}'


def _findings(s: RunSummary) -> str:
    if not s.findings:
        return '<p class="muted">No breaking-change finding for this upgrade path.</p>'
    rows = []
    for f in s.findings:
        entities = "".join(f"<li>{_e(e)}</li>" for e in f.entities)
        on = f'<ul class="entities">{entities}</ul>' if entities else '<span class="muted">the node</span>'
        accepted = f'<br><span class="muted">accepted by the plan: {_e(f.accepted)}</span>' if f.accepted else ""
        rows.append(
            f"<tr><td>{_badge('s-' + f.severity, f.severity)}</td><td>{_e(f.id)}</td>"
            f"<td class=num>{_e(f.introduced_in)}</td><td>{_e(f.title)}{accepted}</td><td>{on}</td>"
            f"<td>{_e(f.advice)}</td></tr>"
        )
    return _table(("severity", "rule", "since Kong", "finding", "applies to", "advice"), rows)


def _rollback(s: RunSummary) -> str:
    r = s.rollback
    if r is None:
        return ""
    failed = next((st for st in s.steps if st.outcome != "pass"), None)
    why = f"the gate at {failed.weight_y:g} % Y (see the steps above)" if failed else r.reason
    rows = [
        f"<tr><th>after</th><td>{_e(why)}</td></tr>",
        f"<tr><th>seconds until all traffic proven on X</th><td class=num>{r.seconds_to_proof:.2f}</td></tr>",
        f"<tr><th>requests after rollback</th><td class=num>{r.requests_after:,}</td></tr>",
        f"<tr><th>of which reached Y</th><td class=num>{r.y_hits_after:,}</td></tr>",
    ]
    return f'<h2 id="rollback">Rollback evidence</h2><table>{"".join(rows)}</table>'


def render(summary: RunSummary, charts: Sequence[Chart], *, generated: datetime | None = None) -> str:
    """The page as a string (charts must already be written)."""
    s = summary
    generated = generated or datetime.now(UTC)
    title = f"Sign-off: {s.plan_name} {s.x_version} \u2192 {s.y_version}: {s.verdict.upper()}"
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Kong upgrade sign-off: {_e(s.plan_name)}</h1>",
        _banner(s),
        _next(s),
        _facts(s),
        '<h2 id="stages">Stages</h2>', _stages(s),
        _drift(s),
        '<h2 id="traffic">Traffic steps</h2>', _traffic(s, charts),
        _rollback(s),
        '<h2 id="parity">Config parity X vs Y</h2>', _parity(s),
        '<h2 id="findings">Breaking-change findings</h2>', _findings(s),
        '<h2 id="nodes">Nodes</h2>', _nodes(s),
        _approval(s),
        f"<footer>Generated {_e(_time(generated))} by kong-upgrade-harness from plan "
        f"{_e(s.plan_path)} at commit {_e(s.git_commit)}. Charts are also saved as PNG files "
        f"beside this page.</footer>",
        "</main></body></html>\n",
    ])


_DATA_URI = re.compile(r"(data:image/png;base64,[A-Za-z0-9+/=]+)")


def _redact_page(redactor: Redactor, page: str) -> str:
    """Redact the text of the page, leaving the embedded images' base64 alone."""
    parts = _DATA_URI.split(page)
    return "".join(p if i % 2 else redactor.text(p, markup=True) for i, p in enumerate(parts))


def write_signoff(
    run_dir: str | Path, summary: RunSummary, *, secrets: Iterable[str] | Redactor = ()
) -> Path:
    """Write ``signoff.html``, its PNG charts and ``summary.json`` into ``run_dir``; return the page."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    charts = charts_for(summary, out, prefix=CHART_PREFIX)
    page = out / PAGE
    page.write_text(_redact_page(redactor, render(summary, charts)), encoding="utf-8")
    (out / SUMMARY_JSON).write_text(redactor.text(summary.to_json()) + "\n", encoding="utf-8")
    return page
