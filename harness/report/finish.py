"""``finish_run``: the one end-of-run path, the writers in the order a run folder needs them.

1. Allure ``categories.json`` and ``environment.properties`` into ``allure-results/``;
2. the sign-off page (+ PNG charts, ``summary.json``) and ``verdict.json``;
3. ``scrub_run_dir``: every text file cleaned of the run's secrets (pytest's failure traces quote
   source lines and values, so result files can hold secrets no attachment held);
4. the Allure HTML, generated from the cleaned results (skipped when no test result exists);
5. ``find_secrets`` over every file, base64 blobs included: the leaks that remain (binary files).

JUnit XML and pytest-html are written by pytest itself at session end, so the reporting fixture
calls this from ``pytest_unconfigure``, after them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.report.allure import write_categories, write_environment_for
from harness.report.allure_html import generate
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
    run_dir: str | Path, summary: RunSummary, secrets: Iterable[str] | Redactor, *, allure_html: bool = True
) -> FinishedRun:
    run = RunDir(Path(run_dir))
    redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
    write_categories(run.allure_results)
    write_environment_for(run.allure_results, summary)
    page = write_signoff(run.root, summary, secrets=redactor)
    run.verdict.write_text(json.dumps({"verdict": summary.verdict, "failing_stage": summary.failing_stage}))
    scrubbed = scrub_run_dir(run.root, redactor)
    report, allure_error = None, None
    if allure_html and any(run.allure_results.glob("*-result.json")):
        try:
            report = generate(run.root)
        except HarnessError as exc:  # a missing node toolchain must not hide the verdict
            allure_error = exc.message
    leaks = find_secrets(run.root, redactor)
    return FinishedRun(page, report, tuple(scrubbed), tuple(leaks), allure_error)
