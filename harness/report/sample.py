"""Synthetic run summaries: for the writers' own tests, the README screenshot, and trying a page.

``python -m harness.report.sample OUT_DIR [--failed] [--screenshot PNG]`` writes ``OUT_DIR/signoff.html``
(and a Chromium screenshot of it). The README's picture is made so:
``python -m harness.report.sample /tmp/signoff --failed --screenshot docs/signoff-example.png``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.summary import (
    Finding,
    NodeInfo,
    ParitySummary,
    Rollback,
    RunSummary,
    StageResult,
    StepResult,
    Threshold,
)

STAGE_NAMES = (
    "preflight", "backup", "provision", "parity", "shift", "cutover", "soak", "decommission",
)


def _step(weight: int, requests: int, *, err_y: int = 0, p50_y: float = 3.1, p99_y: float = 11.0,
          outcome: str = "pass", reason: str = "") -> StepResult:
    share_y = weight / 100
    to_y = round(requests * share_y)
    to_x = requests - to_y
    return StepResult(
        weight_y=weight, requests=requests, share_y=share_y, errors_x=0, errors_y=err_y,
        error_rate_x=0.0 if to_x else None, error_rate_y=(err_y / to_y) if to_y else None,
        p50_x=2.9 if to_x else None, p50_y=p50_y if to_y else None,
        p99_x=10.2 if to_x else None, p99_y=p99_y if to_y else None,
        outcome=outcome, reason=reason, thresholds=(
            Threshold("error_rate_y", f"{100 * err_y / max(to_y, 1):.2f} %", "<= 1.00 %",
                      "fail" if outcome == "fail" else "pass"),
            Threshold("p99_y", f"{p99_y:.1f} ms", "<= 500.0 ms", "pass"),
            Threshold("samples_y", f"{to_y}", ">= 40", "pass"),
        ),
    )


def sample_summary(*, failed: bool = False) -> RunSummary:
    """A hybrid 3.4.2 -> 3.8.1 run; ``failed`` stops at the shift stage with a rollback."""
    started = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)
    nodes = (
        NodeInfo("x-cp", "emulator://3.4.2", "x", "cp", "3.4.2", "process", "left running (existing node)"),
        NodeInfo("x-dp-1", "emulator://3.4.2", "x", "dp", "3.4.2", "process", "left running (existing node)"),
        NodeInfo("y-cp", "emulator://3.8.1", "y", "cp", "3.8.1", "process", "stopped at the end of the run"),
        NodeInfo("y-dp-1", "emulator://3.8.1", "y", "dp", "3.8.1", "process", "stopped at the end of the run"),
        NodeInfo("y-dp-2", "emulator://3.8.1", "y", "dp", "3.8.1", "process", "stopped at the end of the run"),
    )
    figures = {
        "preflight": "X 3.4.2 -> Y 3.8.1 allowed (hybrid)",
        "backup": "412 entities, sha256 3f9a0c1e",
        "provision": "2 Y nodes ready in 3.2 s",
        "parity": "0 added / 0 removed / 0 changed, 1 allowed",
        "shift": "5 steps, worst Y error rate 0.00%",
        "cutover": "Y 100%, 2,000 requests, 0 errors",
        "soak": "120 s, p99 Y 11.4 ms",
        "decommission": "X drained: 0 requests in 60 s",
    }
    durations = (1.2, 0.8, 3.4, 1.1, 52.3, 12.0, 120.4, 61.0)
    if not failed:
        steps = tuple(_step(w, 2000) for w in (10, 25, 50, 75, 100))
        stages = tuple(
            StageResult(n, "passed", d, figures[n]) for n, d in zip(STAGE_NAMES, durations, strict=True)
        )
        rollback = None
        failing = None
        verdict = "passed"
        headline, resume, next_step = "", "", "Every stage passed: record the approval below, then retire X."
    else:
        steps = (
            _step(10, 2000),
            _step(25, 2000, err_y=4, p99_y=14.0),
            _step(50, 2000, err_y=61, p50_y=8.4, p99_y=96.0, outcome="fail",
                  reason="Y error rate 6.10% > limit 1.00% (X 0.00%)"),
        )
        stages = (
            StageResult("preflight", "passed", 1.2, figures["preflight"]),
            StageResult("backup", "passed", 0.8, figures["backup"]),
            StageResult("provision", "passed", 3.4, figures["provision"]),
            StageResult("parity", "passed", 1.1, figures["parity"]),
            StageResult("shift", "failed", 31.9, "step 3 (Y 50%): Y error rate 6.10%",
                        "gate failed: step 3 (Y 50%): Y error rate 6.10% > limit 1.00%; rolled back to X"),
            StageResult("cutover", "not-run"),
            StageResult("soak", "not-run"),
            StageResult("decommission", "not-run"),
        )
        rollback = Rollback("gate failed at step 3 (Y 50%)", 1.8, 1000, 0)
        failing = "shift"
        verdict = "failed"
        headline = "shift: gate failed at 50 % Y on y-dp-1, y-dp-2: error_rate_y 6.10 % <= 1.00 %"
        resume = ".venv/bin/pytest suites/ --plan plans/default.yaml --from-stage shift --run-dir reports/runs/r1"
        next_step = "Fix what shift reports below (on Y, or in the plan), then resume from shift."
    return RunSummary(
        plan_name="default", plan_path="plans/default.yaml", mode="hybrid", verdict=verdict,
        started=started, finished=started + timedelta(seconds=sum(s.duration_s for s in stages) + 4),
        git_commit="690edb3", x_version="3.4.2", y_version="3.8.1", splitter="haproxy",
        nodes=nodes, stages=stages, steps=steps,
        parity=ParitySummary(0, 0, 0, 1, (
            "~ services[orders].tags: ['x'] -> ['y'] (allowed by the plan: tags)",
        )),
        findings=(
            Finding("KONG-3.0-ROUTE-PATHS", "warning", "Regex route paths need the ~ prefix from 3.0",
                    "prefix each regex path with ~ (deck file convert does it)",
                    ("route health-check", "route orders-v1"), "3.0.0"),
            Finding("KONG-3.0-PLUGINS-AVAILABLE", "info",
                    "GET / lists plugins.available_on_server as metadata per plugin from 3.0",
                    "scripts reading the Admin API root get a table per plugin instead of true", (), "3.0.0"),
        ),
        rollback=rollback, failing_stage=failing, headline=headline, resume_command=resume, next_step=next_step,
        run_dir="reports/runs/r1",
    )


def main(argv: list[str] | None = None) -> int:
    from harness.report.signoff import write_signoff

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--failed", action="store_true", help="a run that failed at the shift stage")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", help="also save a screenshot of the page")
    parser.add_argument("--height", type=int, default=1900, help="screenshot height in pixels")
    args = parser.parse_args(argv)
    page = write_signoff(args.out_dir, sample_summary(failed=args.failed))
    print(page)
    if args.screenshot:
        from harness.report.screenshot import screenshot

        print(screenshot(page, args.screenshot, height=args.height))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
