"""What a run did, kept for the reports, and its translation into the sign-off summary.

``build_summary`` also writes the parts a reader acts on: the verdict (``not-judged`` when the
harness could not judge, ``interrupted`` when checks did not all run), the headline of a failing
run (the first failing check's own one-line message, naming the check, the node, the figure and
the limit, each once, cut only between sentences), what to do next and the exact command that
resumes the run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.deckdiff import entity_words, split_path
from harness.ledger import STAGES, Ledger, Verdict
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

if TYPE_CHECKING:
    from harness.compat import Finding as RuleFinding
    from harness.config_diff import ConfigDiff

HEADLINE_MAX = 200
MESSAGE_MAX = 4000


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
    node_states: dict[str, str] = field(default_factory=dict)   # name -> state in words, when known
    drift: ParitySummary | None = None     # what changed on X when the config freeze failed
    paused: str | None = None              # a deliberate pause: why, and until when (harness/run sets it)
    soak: dict[str, int] = field(default_factory=dict)   # decommission's soak: requests, x_hits, errors

    def add_node(self, node: Node) -> None:
        self.nodes[node.name] = node

    def set_state(self, name: str, state: str) -> None:
        """Where a node is, in words (``crashed (exit 70)``, ``stopped by decommission``)."""
        self.node_states[name] = state

    def set_findings(self, findings: Iterable[RuleFinding], config: Mapping[str, object] | None = None,
                     accepted: Mapping[str, str] | None = None) -> None:
        """The breaking-change findings for the reports: one per rule, its entities by name."""
        self.findings = report_findings(findings, config, accepted)

    def set_drift(self, node: str, result: ConfigDiff) -> None:
        """X's configuration on ``node`` against the backup, decK-style, for the sign-off page."""
        self.drift = ParitySummary.of(result, title=f"Config drift on X ({node}): backup -> now")



def _utc(ts: float | None) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts or 0, _dt.UTC)


def cut(text: str, limit: int = HEADLINE_MAX) -> str:
    """``text`` when it fits; else its longest start that ends a sentence or a clause, never mid-word and
    never inside an unclosed parenthesis, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 2]
    for mark in (". ", "; ", ": ", ", ", " ("):
        at = head.rfind(mark)
        if at > limit // 3:
            head = head[:at]
            break
    else:
        head = head.rsplit(" ", 1)[0]
    while head.count("(") > head.count(")") and "(" in head:
        head = head[: head.rfind("(")]
    return head.rstrip(" ,;:(") + " \u2026"


def whole_lines(message: str, limit: int = MESSAGE_MAX) -> str:
    """A stage's message for the reports: whole when it fits, else its first whole lines and a count."""
    if len(message) <= limit:
        return message
    lines = message.splitlines()
    kept: list[str] = []
    for line in lines:
        if sum(len(k) + 1 for k in kept) + len(line) > limit - 80:
            break
        kept.append(line)
    if not kept:
        return cut(message, limit)
    return "\n".join(kept) + f"\n... and {len(lines) - len(kept)} more line(s) (junit.xml has the whole message)"


def first_line(message: str) -> str:
    """The first line of a message; a line that introduces a list (ends with ':') takes the list's first item."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[0]
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"
    return line.replace("\n  next step:", "; next step:")


def _gate_headline(stage: str, steps: tuple[StepResult, ...], nodes: Iterable[NodeInfo]) -> str | None:
    step = next((s for s in steps if s.outcome != "pass"), None)
    if step is None:
        return None
    y = ", ".join(n.name for n in nodes if n.cluster == "y" and n.role != "cp") or "Y"
    bad = ([t for t in step.thresholds if t.outcome == step.outcome]
           or [t for t in step.thresholds if t.outcome != "pass"])
    # a measured figure against its limit reads best; the sequential gate's decision says it in words
    bad.sort(key=lambda t: t.name.startswith("sequential_"))
    word = "gate failed" if step.outcome == "fail" else "gate could not judge"
    if bad:
        t = bad[0]
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        if t.name.startswith("sequential_"):
            what = f"{t.name}: {_sequential_words(t.explanation)}"
        else:
            what = f"{t.name} {t.observed}, threshold {t.limit}" if t.limit else f"{t.name} {t.observed}"
        return f"{stage}: {word} at {step.weight_y:g} % Y on {y}: {what}{more}"
    reason = step.reason.split(": ", 1)[-1]
    return f"{stage}: {word} at {step.weight_y:g} % Y on {y}: {reason}"


def _sequential_words(explanation: str) -> str:
    text = explanation.split("): ", 1)[-1] if explanation.startswith("sequential gate") else explanation
    text = re.sub(r"^after [\d.]+ s \(\d+ looks\): ", "", text)
    return text.split(": e-value", 1)[0]


def headline(verdict: Verdict | None, steps: tuple[StepResult, ...] = (), nodes: Iterable[NodeInfo] = ()) -> str:
    """The first failing check's own one-line message, under ``HEADLINE_MAX`` characters."""
    if verdict is None or verdict.outcome == "passed":
        return ""
    if verdict.stage == "shift" and verdict.outcome == "failed":
        gate = _gate_headline(verdict.stage, steps, nodes)
        if gate:
            return cut(gate)
    check, _, text = verdict.message.partition(": ")
    if not text or " " in check:
        check, text = "", verdict.message
    where = f" at {check}" if check else ""
    word = {"interrupted": "was interrupted", "paused": "is paused"}.get(verdict.outcome, "failed")
    if verdict.cause == "not-judged":
        word = "could not be judged"
    return cut(f"{verdict.stage} {word}{where}: {first_line(text)}")


def _shell_path(path: Path | str) -> str:
    p = Path(path)
    with contextlib.suppress(ValueError):
        p = p.resolve().relative_to(Path.cwd())
    return shlex.quote(str(p))


def _command(plan_path: Path | str, stage: str | None, run_dir: Path | str, verdict: str,
             at: StageResult | None) -> str:
    if stage is None or verdict == "passed":
        return ""
    if _fresh_run(at):
        return f".venv/bin/pytest suites/ --plan {_shell_path(plan_path)}"
    return resume_command(plan_path, stage, run_dir)


def resume_command(plan_path: Path | str, stage: str, run_dir: Path | str | None) -> str:
    """The exact command that resumes ``run_dir`` at ``stage``."""
    folder = f" --run-dir {_shell_path(run_dir)}" if run_dir else ""
    return f".venv/bin/pytest suites/ --plan {_shell_path(plan_path)} --from-stage {stage}{folder}"


def _next_step(verdict: str, stage: StageResult | None) -> str:
    if verdict == "passed":
        return "Every stage passed: record the approval below, then retire X (existing X nodes are left running)."
    if stage is None:
        return "Run the upgrade: no stage has run yet."
    if verdict == "interrupted":
        return (f"The run was interrupted during {stage.name}; traffic was returned to X. Resume from "
                f"{stage.name} when ready.")
    if stage.outcome == "paused":
        return f"The shift is paused as the plan asks ({stage.message}). Resume the shift when ready."
    if verdict == "not-judged":
        return (f"The harness could not judge {stage.name}: a node, the splitter or the probe did not work. "
                "Fix the environment it names (Y was not found unfit), then resume from that stage.")
    if verdict == "failed":
        message = stage.message.split(": ", 1)[-1]
        for prefix, advice in _ADVICE:
            if message.startswith(prefix):
                return advice.format(stage=stage.name)
        return f"Fix what {stage.name} reports below (on Y, or in the plan), then resume from {stage.name}."
    return f"Resume from {stage.name}, the first stage that has not passed."


# what to fix, by the failure's first words (harness.messages and the suites' own sentences)
_FREEZE = "config drift: X's configuration changed"
_ADVICE: tuple[tuple[str, str], ...] = (
    (_FREEZE, "Someone wrote to X during the run (the config freeze did not hold): find who, restore the backup "
              "on X, then start the upgrade again from the beginning."),
    ("config drift:", "Y's configuration differs from X's: fix how Y was loaded, or allow the difference in the "
                      "plan's parity.allow with a reason; then resume from {stage}."),
    ("behaviour difference:", "Y answers differently from X: fix Y or its configuration; if the change is expected "
                              "for this Kong version, record it in the plan. Then resume from {stage}."),
    ("gate failed:", "Y failed the gate under traffic and all traffic went back to X: find why in the steps and "
                     "the node logs, fix Y, then resume from {stage}."),
    ("breaking changes block", "Fix the findings in X's configuration (on a copy), or accept each in the plan's "
                               "considerations.accept with a reason; then resume from {stage}."),
)


def _fresh_run(stage: StageResult | None) -> bool:
    """A freeze failure cannot be resumed: X changed under the run, so everything starts again."""
    return stage is not None and stage.message.split(": ", 1)[-1].startswith(_FREEZE)


def _node_state(n: Node, rec: RunRecord, decommissioned: bool) -> str:
    if n.name in rec.node_states:
        return rec.node_states[n.name]
    if n.cluster == "x" and decommissioned:
        return "retired: stopped by decommission" if n.owned else "drained, ready to retire (left running)"
    if n.owned:
        return "stopped at the end of the run (started by the harness)"
    return "left running (existing node)"


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
        stages.append(StageResult(name, v.outcome, v.duration, figure[:200], whole_lines(v.message), v.cause))
    stopped = next((s for s in stages if s.outcome in ("failed", "interrupted", "paused")), None)
    if stopped is not None and stopped.outcome == "interrupted":
        verdict = "interrupted"
    elif stopped is not None and stopped.cause in ("not-judged", "paused"):
        verdict = "not-judged"
    elif stopped is not None:
        verdict = "failed"
    elif all(s.outcome == "passed" for s in stages):
        verdict = "passed"
    else:
        verdict = "incomplete"
    failing = stopped.name if stopped is not None else None
    started = min((v.started for v in verdicts.values()), default=None)
    finished = max((v.finished for v in verdicts.values()), default=None)
    decommissioned = getattr(verdicts.get("decommission"), "outcome", None) == "passed"
    nodes = tuple(
        NodeInfo(n.name, n.spec, n.cluster, n.role, n.version or "unknown", n.provider,
                 _node_state(n, rec, decommissioned))
        for n in rec.nodes.values()
    )
    resume_at = failing or next((s.name for s in stages if s.outcome != "passed"), None)
    at = next((s for s in stages if s.name == resume_at), None)
    run_dir = ledger.run_dir
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
        headline=headline(verdicts.get(failing) if failing else None, tuple(rec.steps), nodes),
        resume_command=_command(plan_path, resume_at, run_dir, verdict, at),
        next_step=_next_step(verdict, at),
        drift=rec.drift,
        run_dir=str(run_dir),
    )


# ---- findings: one row per rule, the entities it applies to by name -------------------------------


def _names_by_id(config: Mapping[str, object] | None) -> dict[str, str]:
    """Entity ids of a (flat or nested) declarative config -> ``route orders``-style words."""
    out: dict[str, str] = {}

    def walk(kind: str, items: object) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            name = item.get("name") or item.get("username") or item.get("custom_id")
            if item.get("id") and name:
                out[str(item["id"])] = str(name)
            if kind == "services":
                walk("routes", item.get("routes"))

    for kind in ("services", "routes", "consumers"):
        walk(kind, (config or {}).get(kind))
    return out


def _scope(scope: str, names: Mapping[str, str]) -> str:
    if scope in ("", "global"):
        return "global"
    parts = []
    for part in scope.split("+"):
        kind, _, ref = part.partition(":")
        parts.append(f"{kind} {names.get(ref, ref)}".strip())
    return "on " + ", ".join(parts)


def entity_name(entity: str, names: Mapping[str, str] | None = None) -> str:
    """A finding's entity in words: ``routes['health-check']`` -> ``route health-check``;
    ``plugins['key-auth@route:<id>'].config.x`` -> ``plugin key-auth on route orders (config.x)``."""
    names = names or {}
    if entity == "node":
        return "the node (kong.conf or version)"
    kind, key, rest = split_path(entity)
    if not kind:
        return entity
    if kind == "plugins" and "@" in key:
        plugin, scope = key.split("@", 1)
        words = f"plugin {plugin} {_scope(scope, names)}"
    else:
        words = entity_words(kind, names.get(key, key))
    return f"{words} ({rest})" if rest else words


def report_findings(findings: Iterable[RuleFinding], config: Mapping[str, object] | None = None,
                    accepted: Mapping[str, str] | None = None) -> list[Finding]:
    """Breaking-change findings for the reports: one per rule, listing every entity it applies to by
    name (ids resolved through X's backup), with the version that introduced it and the advice."""
    names = _names_by_id(config)
    accepted = accepted or {}
    by_rule: dict[str, list[RuleFinding]] = {}
    for f in findings:
        by_rule.setdefault(f.id, []).append(f)
    out = []
    for rule, hits in by_rule.items():
        first = hits[0]
        entities = tuple(dict.fromkeys(entity_name(h.entity, names) for h in hits))
        severity = min((h.severity for h in hits), key=("error", "warning", "info").index)
        out.append(Finding(rule, severity, first.title or first.breaks[:160], first.action, entities,
                           first.introduced_in, accepted.get(rule, "")))
    return out


def findings_text(findings: Iterable[Finding]) -> list[str]:
    """The findings summary for the terminal: one line per rule, its entities, the advice."""
    lines = []
    for f in findings:
        on = ", ".join(f.entities[:6]) + (f" and {len(f.entities) - 6} more" if len(f.entities) > 6 else "")
        since = f" (Kong {f.introduced_in})" if f.introduced_in else ""
        accepted = f" [accepted: {f.accepted}]" if f.accepted else ""
        lines.append(f"{f.severity.upper():7} {f.id}{since}: {f.title}{accepted}")
        if on:
            lines.append(f"        on: {on}")
        if f.advice:
            lines.append(f"        do: {cut(f.advice, 240)}")
    return lines

