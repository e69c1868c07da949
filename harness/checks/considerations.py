"""Considerations: the breaking changes between X's and Y's versions that this configuration meets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.compat import Finding, check_hybrid_versions, check_upgrade, explain
from harness.plan import Plan
from harness.summary import Finding as ReportFinding

_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
_THRESHOLD = {"error": 2, "warning": 1, "never": 3}


@dataclass(frozen=True)
class Review:
    x_version: str
    y_version: str
    findings: tuple[Finding, ...]
    blocking: tuple[Finding, ...]
    accepted: tuple[tuple[Finding, str], ...]

    def render_text(self) -> str:
        if not self.findings:
            return f"no breaking change applies to {self.x_version} -> {self.y_version} for this configuration"
        accepted = {f.id: reason for f, reason in self.accepted}
        parts = []
        for f in self.findings:
            text = explain(f)
            if f.id in accepted:
                text += f"\n  accepted by the plan: {accepted[f.id]}"
            parts.append(text)
        return "\n\n".join(parts)

    def render_blocking(self) -> str:
        return "\n\n".join(explain(f) for f in self.blocking)

    def report_findings(self) -> list[ReportFinding]:
        """The findings as the sign-off page lists them."""
        return [ReportFinding(f.id, f.severity, f.title or f.breaks[:120], f.action) for f in self.findings]


def breaking_changes(plan: Plan, config: Mapping[str, object], x_version: str) -> Review:
    """check_upgrade over X's backup and kong.conf, plus the hybrid version rule for Y's own nodes."""
    findings = list(check_upgrade(x_version, plan.y_version, dict(config), dict(plan.considerations.kong_conf),
                                  mode=plan.mode))
    if plan.mode == "hybrid" and plan.y.dp_version:
        finding = check_hybrid_versions(plan.y_version, plan.y.dp_version)
        if finding is not None:
            findings.insert(0, finding)
    threshold = _THRESHOLD[plan.considerations.fail_on]
    accepted_ids = {a.id: a.reason for a in plan.considerations.accept}
    accepted = tuple((f, accepted_ids[f.id]) for f in findings if f.id in accepted_ids)
    blocking = tuple(f for f in findings if _SEVERITY_RANK[f.severity] >= threshold and f.id not in accepted_ids)
    return Review(x_version, plan.y_version, tuple(findings), blocking, accepted)
