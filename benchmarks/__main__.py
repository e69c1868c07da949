"""Run the benchmarks and write ``benchmarks/RESULTS.md``.

    .venv/bin/python -m benchmarks                      # all of them
    .venv/bin/python -m benchmarks config_parity full_run
    .venv/bin/python -m benchmarks --list

Each benchmark runs as ``python -m benchmarks.<name>`` in its own process (its memory and failures are
its own), its output is echoed as it comes, and its table goes into RESULTS.md with the date, the
machine (cores, memory from /proc) and the command. Benchmarks not run this time keep their earlier
section, marked with the date it was measured. A benchmark whose file is missing is reported as
missing. Exit status: 0 when every benchmark run exited 0 (all its targets met).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import REPO, machine

#: every benchmark, in the order they run (quick ones first, the full run of the plan last)
BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("emulator_throughput", "emulator proxy throughput vs the echo upstream alone (wrk)"),
    ("probe_rate", "open-loop probe: sustained rate, CPU, latency percentiles beside wrk"),
    ("balancer_timers", "balancer source's timers (HAProxy, nginx) vs wrk's p50/p99 at +20 ms; the probe's beside"),
    ("rollback", "rollback latency: failed gate decision to all traffic verified on X"),
    ("kill_to_x", "dead man's switch: kill -9 of the harness to all traffic on X, per splitter"),
    ("config_parity", "config parity at scale: normalise + diff vs DeepDiff"),
    ("admin_budget", "Admin API call budget at 55,000 entities: time vs size-scaled deadline"),
    ("gate_simulation", "sequential vs fixed-window gate on 10,000 simulated upgrades per case (in process)"),
    ("differential", "differential corpus at 55,000 entities: build, sample, serial vs concurrent"),
    ("full_run", "full run of the default plan: wall time and harness overhead"),
)
NAMES = tuple(name for name, _ in BENCHMARKS)
RESULTS = REPO / "benchmarks" / "RESULTS.md"
_SECTION = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str            # ok | targets missed (exit N) | failed (exit N) | timeout | missing
    seconds: float
    stdout: str
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_one(name: str, timeout: float) -> Outcome:
    if not (REPO / "benchmarks" / f"{name}.py").is_file():
        return Outcome(name, "missing", 0.0, "", f"benchmarks/{name}.py does not exist")
    print(f"\n=== {name} ===", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    timed_out = threading.Event()
    with tempfile.TemporaryFile(mode="w+") as err:
        process = subprocess.Popen([sys.executable, "-m", f"benchmarks.{name}"], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)

        def stop() -> None:                      # the benchmark and what it started (its own session), by id
            if process.poll() is None:
                timed_out.set()
                os.killpg(process.pid, signal.SIGTERM)

        watchdog = threading.Timer(timeout, stop)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:          # echo as it comes
                print(line, end="", flush=True)
                lines.append(line)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop()
                process.wait(timeout=30)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        err.seek(0)
        stderr_tail = "\n".join(err.read().rstrip().splitlines()[-15:])
    seconds = time.perf_counter() - start
    code = process.returncode
    if timed_out.is_set():
        status = f"timeout after {timeout:.0f} s"
    elif code == 0:
        status = "ok"
    elif "|" in "".join(lines) and code == 1:
        status = "targets missed (exit 1)"
    else:
        status = f"failed (exit {code})"
    if stderr_tail and code != 0:
        print(stderr_tail, file=sys.stderr, flush=True)
    return Outcome(name, status, seconds, "".join(lines), stderr_tail)


def section(outcome: Outcome, stamp: str) -> str:
    out = [f"## {outcome.name}", "", f"Measured {stamp}: {outcome.status}, {outcome.seconds:.0f} s "
           f"(`.venv/bin/python -m benchmarks.{outcome.name}`).", ""]
    text = outcome.stdout.strip()
    if text and re.search(r"^\|.*\|$", text, flags=re.MULTILINE):
        out.append(text)                         # already Markdown (benchmarks.common.render_table)
    elif text:
        out += ["```", text, "```"]
    if not outcome.ok and outcome.stderr_tail:
        out += ["", "Last lines of its error output:", "", "```", outcome.stderr_tail, "```"]
    return "\n".join(out) + "\n"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev


def write_results(outcomes: list[Outcome], command: str, stamp: str, path: Path = RESULTS,
                  load_at_start: str = "?") -> None:
    previous = dict(_SECTION.findall(path.read_text())) if path.is_file() else {}
    info = machine()
    lines = [
        "# Benchmark results", "",
        "Written by `.venv/bin/python -m benchmarks` (see `benchmarks/__main__.py`); each table compares our "
        "figure with a baseline measured in the same run.", "",
        f"- last run: {stamp}, commit {git_revision()}",
        f"- command: `{command}`",
        f"- machine: {info.get('cores')} cores ({info.get('cpu', 'cpu unknown')}), "
        f"{info.get('memory')} memory, Linux {info.get('kernel')}, Python {info.get('python')}",
        f"- load average when the run began: {load_at_start} (other work on the machine inflates wall "
        "times; tables show CPU time beside wall time where they part)",
        "", "| benchmark | status | seconds |", "|---|---|---|",
    ]
    ran = {o.name: o for o in outcomes}
    for name in NAMES:
        if name in ran:
            lines.append(f"| {name} | {ran[name].status} | {ran[name].seconds:.0f} |")
        elif name in previous:
            lines.append(f"| {name} | not run this time (earlier figures below) | - |")
    body = []
    for name in NAMES:
        if name in ran:
            body.append(f"<!-- bench:{name} -->\n{section(ran[name], stamp)}<!-- /bench:{name} -->")
        elif name in previous:
            body.append(f"<!-- bench:{name} -->\n{previous[name]}<!-- /bench:{name} -->")
    path.write_text("\n".join(lines) + "\n\n" + "\n\n".join(body) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(NAMES)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per benchmark")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.list:
        for name, what in BENCHMARKS:
            present = "" if (REPO / "benchmarks" / f"{name}.py").is_file() else "  (missing)"
            print(f"{name:22} {what}{present}")
        return 0
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; expected some of: {', '.join(NAMES)}")
    chosen = [n for n in NAMES if not args.names or n in args.names]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = machine().get("load", "?")
    outcomes = [run_one(name, args.timeout) for name in chosen]
    print("\n=== summary ===")
    for o in outcomes:
        extra = f"  {o.stderr_tail}" if o.status == "missing" else ""
        print(f"{o.name:22} {o.status:32} {o.seconds:6.0f} s{extra}")
    if not args.no_write:
        command = ".venv/bin/python -m benchmarks" + ("" if not args.names else " " + shlex.join(args.names))
        write_results(outcomes, command, stamp, load_at_start=load_at_start)
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
