"""The run folder: ``reports/runs/<UTC time>-<plan name>/`` and the names of what goes in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder (see ARCHITECTURE.md, "Run folder"); nothing is created but ``root``."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.json"

    @property
    def junit(self) -> Path:
        return self.root / "junit.xml"

    @property
    def allure_results(self) -> Path:
        return self.root / "allure-results"

    @property
    def allure_report(self) -> Path:
        return self.root / "allure-report" / "index.html"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def signoff(self) -> Path:
        return self.root / "signoff.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"


def run_dir_name(plan_name: str, started: datetime) -> str:
    """``20250314T093000Z-default``: sortable UTC time, then the plan name made path-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", plan_name).strip("-.") or "plan"
    return f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{safe}"


def new_run_dir(base: str | Path, plan_name: str, started: datetime | None = None) -> RunDir:
    """Create a fresh run folder under ``base`` (``-2``, ``-3`` ... if the second is taken)."""
    name = run_dir_name(plan_name, started or datetime.now(UTC))
    root = Path(base) / name
    n = 2
    while True:
        try:
            root.mkdir(parents=True)
            return RunDir(root)
        except FileExistsError:
            root = Path(base) / f"{name}-{n}"
            n += 1
