"""Full run: wall time of the default plan and the harness's own overhead.

    .venv/bin/python -m benchmarks.full_run [--plan plans/default.yaml] [--timeout 900]

Runs ``pytest suites/ -p no:cacheprovider`` from the repository root in a subprocess (Docker settings
as in the Makefile), times it, and subtracts the time the plan itself asks to wait: one hold per
traffic step plus the soak (``traffic.hold_seconds * len(traffic.steps) + traffic.soak_seconds``).
What is left is the harness's overhead: starting nodes, parity captures, probes warming up, reports.
Also reports the verdict line the run printed (``[kuh] verdict: ...``) and, from the run folder's
``junit.xml``, the time each stage took.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, Row, Table, fmt_seconds, print_table
from harness.plan import load_plan

TARGET_OVERHEAD_S = 20.0
DOCKER_ENV = {"TESTCONTAINERS_RYUK_DISABLED": "true", "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
              "TC_HOST": "127.0.0.1"}


@dataclass(frozen=True)
class RunOutcome:
    wall_seconds: float
    exit_code: int | None          # None: stopped at the timeout
    verdict: str | None            # the text after "[kuh] verdict: "
    summary: str | None            # pytest's last "=== ... in N s ===" line
    run_dir: Path | None
    stage_seconds: tuple[tuple[str, float], ...]
    tail: str                      # last lines of output, for a failure


def configured_wait(plan_path: Path) -> tuple[float, float, int]:
    """(hold seconds per step, soak seconds, number of steps) of the plan."""
    plan = load_plan(plan_path)
    return plan.traffic.hold_seconds, plan.traffic.soak_seconds, len(plan.traffic.steps)


def stage_times(run_dir: Path | None) -> tuple[tuple[str, float], ...]:
    """Seconds per suite file from the run folder's junit.xml (empty when there is none)."""
    if run_dir is None or not (run_dir / "junit.xml").is_file():
        return ()
    totals: dict[str, float] = {}
    for case in ET.parse(run_dir / "junit.xml").getroot().iter("testcase"):
        module = (case.get("classname") or "?").split(".")[-1]
        totals[module] = totals.get(module, 0.0) + float(case.get("time") or 0.0)
    return tuple(sorted(totals.items()))


def run_plan(plan: Path | None, timeout: float) -> RunOutcome:
    command = [str(REPO / ".venv" / "bin" / "pytest"), "suites/", "-p", "no:cacheprovider"]
    if plan is not None:
        command += ["--plan", str(plan)]
    env = {**os.environ, **DOCKER_ENV}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)      # the run's own session: pytest and what it started
        output, _ = process.communicate(timeout=30)
        code = None
    wall = time.perf_counter() - start
    verdict = _last(r"\[kuh\] verdict: (.+)", output)
    run_dir_text = _last(r"\[kuh\] run folder: (\S+)", output)
    run_dir = (REPO / run_dir_text) if run_dir_text else None
    summary = _last(r"^=+ (.+ in [\d.]+s.*?) =+$", output)
    tail = "\n".join(output.rstrip().splitlines()[-25:])
    return RunOutcome(wall, code, verdict, summary, run_dir, stage_times(run_dir), tail)


def _last(pattern: str, text: str) -> str | None:
    found = re.findall(pattern, text, flags=re.MULTILINE)
    return found[-1].strip() if found else None


def build_table(outcome: RunOutcome, hold: float, soak: float, steps: int) -> Table:
    waits = hold * steps + soak
    overhead = outcome.wall_seconds - waits
    passed = outcome.exit_code == 0 and (outcome.verdict or "").upper().startswith("PASS")
    target = f"<= {TARGET_OVERHEAD_S:.0f} s"
    if passed:
        overhead_row = Row("harness overhead (wall - holds - soak)", fmt_seconds(overhead), "-", "-",
                           target, overhead <= TARGET_OVERHEAD_S)
    else:   # the holds were not all spent: subtracting them would flatter the harness
        overhead_row = Row("harness overhead (wall - holds - soak)", "not measurable: the run did not pass",
                           "-", "-", target, False)
    rows = (
        Row("wall time of `pytest suites/`", fmt_seconds(outcome.wall_seconds),
            f"{fmt_seconds(waits)} (configured waits)",
            f"{outcome.wall_seconds / waits:.1f}x" if waits else "-"),
        overhead_row,
        Row("verdict", outcome.verdict or "(no verdict line)", "-", "-", "PASS", passed),
    )
    notes = [f"plan waits: hold {hold:g} s x {steps} steps + soak {soak:g} s = {waits:g} s",
             f"pytest exit code: {'timeout' if outcome.exit_code is None else outcome.exit_code}; "
             f"summary: {outcome.summary or '(none)'}"]
    if outcome.stage_seconds:
        in_tests = sum(seconds for _, seconds in outcome.stage_seconds)
        notes.append("time per suite (junit.xml): " + ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in outcome.stage_seconds)
            + f"; outside tests (start-up, collection, reports): {outcome.wall_seconds - in_tests:.1f} s")
    if outcome.run_dir is not None:
        shown = outcome.run_dir.relative_to(REPO) if outcome.run_dir.is_relative_to(REPO) else outcome.run_dir
        notes.append(f"run folder: {shown}")
    if not passed:
        notes.append("the run did not pass, so the plan's holds and soak were not all spent and the "
                     "overhead of a complete upgrade could not be measured; see the run folder")
    return Table("Full run: default plan", rows, tuple(notes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--plan", type=Path, default=None,
                        help="plan file (default: the suites' default, plans/default.yaml)")
    parser.add_argument("--timeout", type=float, default=900.0, help="stop the run after this many seconds")
    args = parser.parse_args(argv)
    hold, soak, steps = configured_wait(args.plan or REPO / "plans" / "default.yaml")
    outcome = run_plan(args.plan, args.timeout)
    table = build_table(outcome, hold, soak, steps)
    print_table(table)
    if outcome.exit_code != 0:
        print("\nlast lines of the run:\n" + outcome.tail, file=sys.stderr)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
