"""``generate(run_dir)``: the Allure HTML report of a run, through ``scripts/allure-html.sh``.

The shell script is the one documented command (README, CI); this wrapper runs it with a bounded
timeout, in its own process group (stopped by its id on timeout), and turns its exit into a
:class:`HarnessError` that says what was missing and what to run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "allure-html.sh"
REPORT = Path("allure-report") / "index.html"


HISTORY = "allure-history.jsonl"


def carry_history(run_dir: str | Path, previous: str | Path | None) -> Path | None:
    """Copy the history of the previous run of the same plan into this run folder (Allure 3 reads it
    and appends this run: the trend widget then spans the plan's runs). Returns the history path."""
    run = Path(run_dir)
    target = run / HISTORY
    if previous is not None and (Path(previous) / HISTORY).is_file() and not target.exists():
        shutil.copyfile(Path(previous) / HISTORY, target)
    return target


def generate(run_dir: str | Path, *, timeout_s: float = 120.0, script: Path = SCRIPT, report_name: str | None = None,
             history: bool = True) -> Path:
    """Generate ``RUN_DIR/allure-report/index.html`` (one file, offline) from ``RUN_DIR/allure-results``.

    ``report_name`` titles the report (plan, versions, verdict), through ``KUH_REPORT_NAME``; the
    history file ``RUN_DIR/allure-history.jsonl`` goes to Allure through ``allurerc.mjs``
    (``KUH_ALLURE_HISTORY``), which Allure 3 reads from the working directory.
    """
    run = Path(run_dir).resolve()
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    if report_name:
        env["KUH_REPORT_NAME"] = report_name
    if history:
        env["KUH_ALLURE_HISTORY"] = str(run / HISTORY)
    proc = subprocess.Popen(
        ["bash", str(script), str(run)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True, env=env,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group the script was started in
        proc.communicate()
        raise HarnessError(
            f"Allure HTML generation for {run} took more than {timeout_s:.0f} s (pid {proc.pid}, stopped)",
            hint=f"run it by hand to see where it hangs: bash scripts/allure-html.sh {run}",
        ) from None
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        message = next((ln for ln in reversed(lines) if ln.startswith("allure-html:")), "")
        tail = "\n".join(lines[-10:])
        raise HarnessError(
            f"Allure HTML generation for {run} failed (exit {proc.returncode}): "
            f"{message.removeprefix('allure-html: ') or 'see the output below'}\n{tail}",
            hint=f"fix what the message names, then run: bash scripts/allure-html.sh {run}",
        )
    report = run / REPORT
    if not report.is_file():
        raise HarnessError(
            f"Allure HTML generation for {run} exited 0 but {report} does not exist "
            f"(script printed {out.decode('utf-8', 'replace').strip()!r})",
            hint="check the allure version in package.json (3.x, `allure2 --single-file`)",
        )
    if report_name:
        retitle(report, report_name)
    return report


_WIDGET = re.compile(r'd\("widgets/(summary|history-trend)\.json","([A-Za-z0-9+/=]+)"\)')


def retitle(report: Path, name: str) -> bool:
    """Set the report name in the single-file report's summary and trend widgets (the script passes a
    fixed ``--report-name``). Returns False, changing nothing, when the file has another layout."""
    text = report.read_text(encoding="utf-8")

    def swap(match: re.Match[str]) -> str:
        try:
            data = json.loads(base64.b64decode(match.group(2)))
        except ValueError:
            return match.group(0)
        if isinstance(data, dict):
            data["reportName"] = name
        elif isinstance(data, list):
            for entry in data:
                if isinstance(entry, dict) and "reportName" in entry:
                    entry["reportName"] = name
        blob = base64.b64encode(json.dumps(data, separators=(",", ":")).encode("utf-8")).decode("ascii")
        return f'd("widgets/{match.group(1)}.json","{blob}")'

    new, count = _WIDGET.subn(swap, text)
    if count:
        report.write_text(new, encoding="utf-8")
    return bool(count)
