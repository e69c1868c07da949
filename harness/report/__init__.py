"""Report writers at the edge of a run: sign-off page, charts, Allure files, redaction, screenshots.

The suites fill a ``RunSummary``; the reporting fixture hands it to ``finish_run`` (or to the single
writers). Evidence is attached only through ``harness.report.allure`` (``attach_json`` & co.), which
redacts. Matplotlib is imported here (charts); Chromium only when a screenshot is asked for.
"""

from harness.report.allure_html import generate as generate_allure_html
from harness.report.charts import Chart, charts_for, write_charts
from harness.report.finish import FinishedRun, finish_run
from harness.report.redact import Redactor, SecretHit, find_secrets, scrub_run_dir
from harness.report.screenshot import distinct_colours, is_blank, screenshot
from harness.report.signoff import write_signoff
from harness.summary import (
    Finding,
    NodeInfo,
    ParitySummary,
    Rollback,
    RunSummary,
    StageResult,
    StepResult,
)

__all__ = [
    "Chart",
    "Finding",
    "FinishedRun",
    "NodeInfo",
    "ParitySummary",
    "Redactor",
    "Rollback",
    "RunSummary",
    "SecretHit",
    "StageResult",
    "StepResult",
    "charts_for",
    "distinct_colours",
    "find_secrets",
    "finish_run",
    "generate_allure_html",
    "is_blank",
    "screenshot",
    "scrub_run_dir",
    "write_charts",
    "write_signoff",
]
