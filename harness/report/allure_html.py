"""``generate(run_dir)``: the Allure HTML report of a run, through ``scripts/allure-html.sh``.

The shell script is the one documented command (README, CI); this wrapper runs it with a bounded
timeout, in its own process group (stopped by its id on timeout), and turns its exit into a
:class:`HarnessError` that says what was missing and what to run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "allure-html.sh"
REPORT = Path("allure-report") / "index.html"


def generate(run_dir: str | Path, *, timeout_s: float = 120.0, script: Path = SCRIPT) -> Path:
    """Generate ``RUN_DIR/allure-report/index.html`` (one file, offline) from ``RUN_DIR/allure-results``."""
    run = Path(run_dir).resolve()
    proc = subprocess.Popen(
        ["bash", str(script), str(run)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True, env={**os.environ, "ALLURE_NO_ANALYTICS": "true"},
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
    return report
