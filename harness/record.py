"""What a run did, kept for the reports, and its translation into the sign-off summary."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from harness.ledger import STAGES, Ledger
from harness.model import Node
from harness.summary import (
    Finding,
    NodeInfo,
    ParitySummary,
    Rollback,
    RunSummary,
    StageResult,
    StepResult,
)


@dataclass
class RunRecord:
    """Filled in by the environment as the stages run; read once when the session ends."""

    plan_name: str = ""
    mode: str = ""
    x_version: str = ""
    y_version: str = ""
    splitter: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    parity: ParitySummary | None = None
    findings: list[Finding] = field(default_factory=list)
    rollback: Rollback | None = None
    notes: list[str] = field(default_factory=list)

    def add_node(self, node: Node) -> None:
        self.nodes[node.name] = node



def _utc(ts: float | None) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts or 0, _dt.UTC)


def build_summary(rec: RunRecord, ledger: Ledger, plan_path: Path | str, *, git_commit: str) -> RunSummary:
    """The sign-off summary of a run, from its record and its ledger."""
    verdicts = {v.stage: v for v in ledger.verdicts()}
    stages = []
    for name in STAGES:
        v = verdicts.get(name)
        if v is None:
            stages.append(StageResult(name, "not-run"))
            continue
        figure = "; ".join(f"{k}: {val}" for k, val in v.figures.items())
        stages.append(StageResult(name, v.outcome, v.duration, figure[:200], v.message[:500]))
    failing = next((s.name for s in stages if s.outcome == "failed"), None)
    if failing:
        verdict = "failed"
    elif all(s.outcome == "passed" for s in stages):
        verdict = "passed"
    else:
        verdict = "incomplete"
    started = min((v.started for v in verdicts.values()), default=None)
    finished = max((v.finished for v in verdicts.values()), default=None)
    nodes = tuple(
        NodeInfo(n.name, n.spec, n.cluster, n.role, n.version or "unknown") for n in rec.nodes.values()
    )
    return RunSummary(
        plan_name=rec.plan_name or ledger.plan_name,
        plan_path=str(plan_path),
        mode=rec.mode or "dbless",
        verdict=verdict,
        started=_utc(started),
        finished=_utc(finished),
        git_commit=git_commit,
        x_version=rec.x_version or "unknown",
        y_version=rec.y_version or "unknown",
        splitter=rec.splitter or "none",
        nodes=nodes,
        stages=tuple(stages),
        steps=tuple(rec.steps),
        parity=rec.parity,
        findings=tuple(rec.findings),
        rollback=rec.rollback,
        failing_stage=failing,
    )
