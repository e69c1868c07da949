"""Stage verdicts on disk, so a run can resume and CI can run stages as separate jobs.

The ledger is ``ledger.json`` in the run folder. Stages run in the fixed order of ``STAGES``; a
stage may run only when every earlier stage has a ``passed`` verdict in the same ledger.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import LedgerError

STAGES: tuple[str, ...] = (
    "preflight",
    "backup",
    "considerations",
    "deploy",
    "staging",
    "scale",
    "shift",
    "decommission",
)

Outcome = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Verdict:
    """One stage's outcome with the figures behind it."""

    stage: str
    outcome: Outcome
    started: float
    finished: float
    message: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return round(self.finished - self.started, 3)


def stage_index(stage: str) -> int:
    try:
        return STAGES.index(stage)
    except ValueError:
        raise LedgerError(
            f"unknown stage {stage!r}", hint=f"valid stages, in run order: {', '.join(STAGES)}"
        ) from None


class Ledger:
    """Reads and writes ``ledger.json``; every write is atomic (write, then rename)."""

    FILE = "ledger.json"

    def __init__(self, run_dir: Path, *, plan_name: str, plan_path: str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.FILE
        self._data: dict[str, Any] = {
            "plan_name": plan_name,
            "plan_path": plan_path,
            "created": time.time(),
            "stages": {},
            "facts": {},
        }
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise LedgerError(
                f"cannot read the ledger {self.path}: {exc}",
                hint="start a fresh run (omit --run-dir) or repair the JSON file",
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise LedgerError(f"{self.path} is not a ledger (no 'stages' object)", hint="start a fresh run")
        self._data.update(data)

    def _save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.path)

    # verdicts -------------------------------------------------------------------------------
    def record(self, verdict: Verdict) -> None:
        entry = asdict(verdict)
        entry["figures"] = dict(verdict.figures)
        entry["duration"] = verdict.duration
        self._data["stages"][verdict.stage] = entry
        self._save()

    def verdict(self, stage: str) -> Verdict | None:
        entry = self._data["stages"].get(stage)
        if entry is None:
            return None
        entry = {k: v for k, v in entry.items() if k != "duration"}
        return Verdict(**entry)

    def verdicts(self) -> list[Verdict]:
        return [v for s in STAGES if (v := self.verdict(s)) is not None]

    def missing_before(self, stage: str) -> list[str]:
        """Earlier stages that have no ``passed`` verdict (what blocks ``stage``)."""
        out = []
        for earlier in STAGES[: stage_index(stage)]:
            v = self.verdict(earlier)
            if v is None or v.outcome != "passed":
                out.append(f"{earlier} ({v.outcome if v else 'never run'})")
        return out

    def check_can_run(self, stage: str) -> None:
        missing = self.missing_before(stage)
        if missing:
            raise LedgerError(
                f"stage {stage!r} cannot run: earlier stages have no passed verdict in {self.path}: "
                + ", ".join(missing),
                hint="run the whole upgrade (pytest suites/) or resume from the first stage listed "
                "(--from-stage NAME) once its problem is fixed",
            )

    # facts shared between stages (and sessions) ---------------------------------------------
    def set_fact(self, key: str, value: Any) -> None:
        self._data["facts"][key] = value
        self._save()

    def fact(self, key: str, default: Any = None) -> Any:
        return self._data["facts"].get(key, default)

    @property
    def plan_name(self) -> str:
        return str(self._data["plan_name"])

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data, default=str))
