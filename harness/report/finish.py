"""``finish_run``: the one end-of-run path, the writers in the order a run folder needs them.

1. Allure ``categories.json``, ``environment.properties`` (the verdict first, the findings) and
   ``executor.json`` (the CI job's URL when the CI environment names one) into ``allure-results/``;
2. the sign-off page (+ PNG charts, ``summary.json``) and ``verdict.json``;
3. ``scrub_run_dir``: every text file cleaned of the run's secrets (pytest's failure traces quote
   source lines and values, so result files can hold secrets no attachment held);
4. the Allure HTML, generated from the cleaned results (skipped when no test result exists), titled
   with the plan, versions and verdict, its history carried from the plan's previous run folder;
5. ``find_secrets`` over every file, base64 blobs included: the leaks that remain (binary files).

JUnit XML and pytest-html are written by pytest itself at session end, so the reporting fixture
calls this from ``pytest_unconfigure``, after them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.ledger import atomic_write
from harness.report.allure import (
    executor_info,
    report_name,
    write_categories,
    write_environment_for,
    write_executor,
)
from harness.report.allure_html import carry_history, generate
from harness.report.redact import Redactor, SecretHit, find_secrets, scrub_run_dir
from harness.report.signoff import write_signoff
from harness.rundir import RunDir
from harness.summary import RunSummary


@dataclass(frozen=True)
class FinishedRun:
    """What ``finish_run`` wrote and found."""

    signoff: Path
    allure_report: Path | None
    scrubbed: tuple[Path, ...]
    leaks: tuple[SecretHit, ...]
    allure_error: str | None = None    # why the Allure HTML could not be generated (the verdict stands)

    def assert_clean(self) -> None:
        """Raise when a secret is still in the run folder, naming the files (never the secret)."""
        if self.leaks:
            listed = "\n  ".join(str(h) for h in self.leaks[:20])
            raise HarnessError(
                f"{len(self.leaks)} secret occurrence(s) left in the run folder after scrubbing:\n  {listed}",
                hint="the files named are binary or base64-embedded; attach through harness.report.allure "
                "(which redacts) instead of allure.attach, then delete the run folder",
            )


def finish_run(
    run_dir: str | Path, summary: RunSummary, secrets: Iterable[str] | Redactor, *, allure_html: bool = True,
    previous: Path | None = None, env: Mapping[str, str] | None = None, exit_code: int | None = None,
) -> FinishedRun:
    """``previous``: the plan's previous run folder (its Allure history is carried); ``env``: where the
    CI job's URL is read (default ``os.environ``); ``exit_code`` goes into ``verdict.json``."""
    run = RunDir(Path(run_dir))
    redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    write_categories(run.allure_results)
    write_environment_for(run.allure_results, summary)
    name = report_name(summary)
    write_executor(run.allure_results, executor_info(os.environ if env is None else env, run_id=run.root.name,
                                                     report_name=name))
    page = write_signoff(run.root, summary, secrets=redactor)
    verdict: dict[str, object] = {"verdict": summary.verdict, "failing_stage": summary.failing_stage,
                                  "headline": summary.headline, "resume_command": summary.resume_command}
    if exit_code is not None:
        verdict["exit_code"] = exit_code
    atomic_write(run.verdict, redactor.text(json.dumps(verdict, indent=2)) + "\n")
    scrubbed = scrub_run_dir(run.root, redactor)
    report, allure_error = None, None
    if allure_html and any(run.allure_results.glob("*-result.json")):
        try:
            carry_history(run.root, previous)
            report = generate(run.root, report_name=name)
        except HarnessError as exc:  # a missing node toolchain must not hide the verdict
            allure_error = exc.message
    leaks = find_secrets(run.root, redactor)
    return FinishedRun(page, report, tuple(scrubbed), tuple(leaks), allure_error)
