"""Full run: wall time of whole upgrades at three config sizes and the harness's own overhead.

    .venv/bin/python -m benchmarks.full_run                         # sample, medium (5,500), large (55,000)
    .venv/bin/python -m benchmarks.full_run --sizes medium
    .venv/bin/python -m benchmarks.full_run --plan plans/default.yaml

The sized plans come from ``benchmarks.sized_config`` (the default plan on 2 X and 2 Y process nodes).
Peak RSS is the pytest process's high-water mark (VmHWM, read from /proc while it runs).

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
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, Row, Table, fmt_seconds, print_table
from benchmarks.sized_config import SIZES, entity_count, write_sized_plan
from harness.plan import load_plan

TARGET_OVERHEAD_S = 20.0
#: the issue's targets per size: harness overhead (wall minus configured holds) and pytest's peak RSS
TARGETS = {"sample": 20.0, "medium": 20.0, "large": 60.0}
TARGET_RSS = 1.5 * 2**30
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
    peak_rss: int = 0              # bytes: the pytest process's VmHWM


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
    peak = [0]
    watcher = threading.Thread(target=_watch_rss, args=(process, peak), daemon=True)
    watcher.start()
    try:
        output, _ = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)      # the run's own session: pytest and what it started
        output, _ = process.communicate(timeout=30)
        code = None
    wall = time.perf_counter() - start
    watcher.join(2)
    verdict = _last(r"\[kuh\] verdict: (.+)", output)
    run_dir_text = _last(r"\[kuh\] run folder: (\S+)", output)
    run_dir = (REPO / run_dir_text) if run_dir_text else None
    summary = _last(r"^=+ (.+ in [\d.]+s.*?) =+$", output)
    tail = "\n".join(output.rstrip().splitlines()[-25:])
    return RunOutcome(wall, code, verdict, summary, run_dir, stage_times(run_dir), tail, peak[0])


def _watch_rss(process: subprocess.Popen[str], peak: list[int]) -> None:
    """Keep the process's VmHWM (its resident high-water mark) until it exits."""
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.5)


def _last(pattern: str, text: str) -> str | None:
    found = re.findall(pattern, text, flags=re.MULTILINE)
    return found[-1].strip() if found else None


def build_table(outcome: RunOutcome, hold: float, soak: float, steps: int, *, title: str = "default plan",
                target_overhead: float = TARGET_OVERHEAD_S) -> Table:
    waits = hold * steps + soak
    overhead = outcome.wall_seconds - waits
    passed = outcome.exit_code == 0 and (outcome.verdict or "").upper().startswith("PASS")
    target = f"<= {target_overhead:.0f} s"
    if passed:
        overhead_row = Row("harness overhead (wall - holds - soak)", fmt_seconds(overhead), "-", "-",
                           target, overhead <= target_overhead)
    else:   # the holds were not all spent: subtracting them would flatter the harness
        overhead_row = Row("harness overhead (wall - holds - soak)", "not measurable: the run did not pass",
                           "-", "-", target, False)
    rows = (
        Row("wall time of `pytest suites/`", fmt_seconds(outcome.wall_seconds),
            f"{fmt_seconds(waits)} (configured waits)",
            f"{outcome.wall_seconds / waits:.1f}x" if waits else "-"),
        overhead_row,
        Row("peak RSS of the pytest process", f"{outcome.peak_rss / 2**20:.0f} MiB", "-", "-",
            f"<= {TARGET_RSS / 2**30:.1f} GiB", 0 < outcome.peak_rss <= TARGET_RSS),
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
    return Table(f"Full run: {title}", rows, tuple(notes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--plan", type=Path, default=None, help="run this plan file instead of the sized plans")
    parser.add_argument("--sizes", default="sample,medium,large",
                        help=f"comma list of {', '.join(SIZES)} (default: all three)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="stop a run after this many seconds")
    args = parser.parse_args(argv)
    if args.plan is not None:
        runs = [(str(args.plan), args.plan, TARGET_OVERHEAD_S)]
        folder = None
    else:
        folder = Path(tempfile.mkdtemp(prefix="kuh-sized-"))
        runs = []
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            label = f"{size} config ({entity_count(SIZES[size]) or 19:,} entities)"
            runs.append((label, write_sized_plan(size, folder / size), TARGETS[size]))
    ok = True
    for label, plan, target in runs:
        hold, soak, steps = configured_wait(plan)
        outcome = run_plan(plan, args.timeout)
        table = build_table(outcome, hold, soak, steps, title=label, target_overhead=target)
        print_table(table)
        if outcome.exit_code != 0:
            print("\nlast lines of the run:\n" + outcome.tail, file=sys.stderr)
        ok = ok and table.all_met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
