"""Run folders: their names, their making, finding the newest one of a plan, and what goes in them.

The one owner of run-folder naming. A folder is ``<UTC time>-<random>-<plan name>`` under the
reports root (``reports/runs/20261129T191347Z-3f9a0c-default-dbless``):

- the time sorts folders by start; the random part keeps two runs started in the same second apart
  (their run ids, Docker names and labels come from the folder name);
- neither the time nor the random part holds a ``-``, so the plan name is everything after the
  second ``-`` and ``latest_run_dir`` finds a plan's folders without mistaking plan ``crash`` for
  ``y-crash``;
- the plan name must already be valid (``harness.plan`` allows letters, digits, ``-`` and ``_``):
  anything else is refused here too, so no folder is ever made outside the reports root.

Nothing is created until ``create_run_dir`` is called, after the plan validated.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STAMP = re.compile(r"^\d{8}T\d{6}Z$")
_RANDOM = re.compile(r"^[0-9a-f]{6}$")
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
LEDGER_FILE = "ledger.json"


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder (see reports/README.md); nothing is created here."""

    root: Path

    @property
    def run_id(self) -> str:
        return run_id_of(self.root)

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER_FILE

    @property
    def junit(self) -> Path:
        return self.root / "junit.xml"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def allure_results(self) -> Path:
        return self.root / "allure-results"

    @property
    def allure_report(self) -> Path:
        return self.root / "allure-report" / "index.html"

    @property
    def signoff(self) -> Path:
        return self.root / "signoff.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def verdict(self) -> Path:
        return self.root / "verdict.json"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"


def check_plan_name(plan_name: str) -> str:
    """The plan name, if it can be part of a folder name; else a HarnessError (never a folder)."""
    if not _SAFE_NAME.match(plan_name or ""):
        raise HarnessError(
            f"plan name {plan_name[:80]!r} cannot name a run folder",
            hint="use letters, digits, '-' and '_' (at most 64 characters), e.g. name: kong-3-4-to-3-8",
        )
    return plan_name


def run_dir_name(plan_name: str, started: datetime | None = None, *, token: str | None = None) -> str:
    """``20261129T191347Z-3f9a0c-default``: UTC time, a random part, the (validated) plan name."""
    stamp = (started or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{token or secrets.token_hex(3)}-{check_plan_name(plan_name)}"


def plan_of(folder_name: str) -> str | None:
    """The plan name a run folder was made for, or None when the name is not a run folder's."""
    parts = folder_name.split("-", 2)
    if len(parts) != 3 or not _STAMP.match(parts[0]) or not _RANDOM.match(parts[1]):
        return None
    return parts[2]


def create_run_dir(reports_root: Path, plan_name: str, started: datetime | None = None) -> RunDir:
    """Make a new run folder of ``plan_name`` under ``reports_root`` (never an existing one)."""
    reports_root.mkdir(parents=True, exist_ok=True)
    for _ in range(8):
        root = reports_root / run_dir_name(plan_name, started)
        try:
            root.mkdir()
        except FileExistsError:
            continue
        return RunDir(root)
    raise HarnessError(f"could not make a new run folder under {reports_root}", hint="check the folder")


def latest_run_dir(reports_root: Path, plan_name: str) -> Path | None:
    """The newest run folder of ``plan_name`` under ``reports_root`` that has a ledger."""
    if not reports_root.is_dir():
        return None
    mine = sorted(p for p in reports_root.iterdir() if p.is_dir() and plan_of(p.name) == plan_name)
    return next((p for p in reversed(mine) if (p / LEDGER_FILE).exists()), None)


def run_id_of(run_dir: Path) -> str:
    """The run id: the folder name, made safe for Docker names and labels (unique per folder)."""
    return _RUN_ID_UNSAFE.sub("-", run_dir.name)[:100] or "run"
