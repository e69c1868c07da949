"""Stage verdicts on disk, so a run can resume and CI can run stages as separate jobs.

The ledger is ``ledger.json`` in the run folder. Stages run in the fixed order of ``STAGES``; a
stage may run only when every earlier stage has a ``passed`` verdict in the same ledger.

Outcomes: ``passed`` (every check of the stage ran and passed), ``failed`` (a check failed, or the
harness could not judge: ``cause`` says which), ``skipped`` (an earlier stage closed the gate),
``interrupted`` (the session stopped before the stage's checks had all run: never a pass), and
``paused`` (a deliberate pause in the shift). Only ``passed`` lets a later stage run.

Every write is atomic and durable: the JSON goes to a temporary file, which is flushed and
fsync'ed, then renamed over ``ledger.json`` and the folder fsync'ed, so an interrupt or a crash
leaves either the old ledger or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, TypedDict, cast

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

Outcome = Literal["passed", "failed", "skipped", "interrupted", "paused"]
OUTCOMES: tuple[str, ...] = ("passed", "failed", "skipped", "interrupted", "paused")
# why a stage did not pass: a check said so, the harness could not judge, a harness bug, an interrupt
Cause = Literal["", "check", "not-judged", "internal", "interrupted", "paused"]


@dataclass(frozen=True)
class Verdict:
    """One stage's outcome with the figures behind it."""

    stage: str
    outcome: Outcome
    started: float
    finished: float
    message: str = ""
    figures: Mapping[str, object] = field(default_factory=dict)
    cause: Cause = ""

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


class _VerdictEntry(TypedDict, total=False):
    """A verdict as ``Ledger.record`` writes it into ``ledger.json`` (``Verdict``'s fields, plus ``duration``)."""

    stage: str
    outcome: Outcome
    started: float
    finished: float
    message: str
    figures: Mapping[str, object]
    cause: Cause


class _LedgerData(TypedDict):
    plan_name: str
    plan_path: str
    created: float
    stages: dict[str, dict[str, object]]
    facts: dict[str, object]


class Ledger:
    """Reads and writes ``ledger.json``; every write is atomic (write, then rename)."""

    FILE = "ledger.json"

    def __init__(self, run_dir: Path, *, plan_name: str, plan_path: str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.FILE
        self._data: _LedgerData = {
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
        # a ledger this harness wrote (only 'stages' is checked, as before); keys it does not know are kept
        self._data.update(cast(_LedgerData, data))

    def _save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self._data, indent=2, sort_keys=True, default=str))

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
        known = {f.name for f in fields(Verdict)}
        # the entry was written by record() from a Verdict; keys a newer harness added are left out
        return Verdict(**cast(_VerdictEntry, {k: v for k, v in entry.items() if k in known}))

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

    def first_not_passed(self) -> str | None:
        """The first stage without a ``passed`` verdict (where ``--lf`` resumes), or None when all passed."""
        return next((s for s in STAGES if (v := self.verdict(s)) is None or v.outcome != "passed"), None)

    def check_can_run(self, stage: str) -> None:
        missing = self.missing_before(stage)
        if missing:
            first = missing[0].split(" ", 1)[0]
            raise LedgerError(
                f"stage {stage!r} cannot run: earlier stages have no passed verdict in {self.path}: "
                + ", ".join(missing),
                hint=f"fix what stopped {first}, then resume from it: pytest suites/ --from-stage {first} "
                "(or --lf), or run the whole upgrade again (pytest suites/)",
            )

    # facts shared between stages (and sessions) ---------------------------------------------
    def set_fact(self, key: str, value: object) -> None:
        self._data["facts"][key] = value
        self._save()

    def fact(self, key: str, default: object = None) -> object:
        return self._data["facts"].get(key, default)

    @property
    def plan_name(self) -> str:
        return str(self._data["plan_name"])

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(json.dumps(self._data, default=str))
        return data


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part:
    a temporary file beside it, flushed and fsync'ed, renamed over it, then the folder fsync'ed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
