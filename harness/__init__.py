"""kong-upgrade-harness: the library behind the gated upgrade stages. It never imports pytest.

The suites import only from here; ``tests/unit/test_exports.py`` pins this surface. The stage
checks (``harness.checks.*``) take the run context's parts and return typed results; the message
constructors (``gate_failed``, ``config_drift`` ...) start the failure messages that the Allure
categories sort.

Names are imported when first used (PEP 562 ``__getattr__``), so ``import harness`` and the
subprocesses that import one module of it (the traffic supervisor) do not load scipy, matplotlib
and the rest; ``from harness import X`` works as always.
"""

import importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from harness import checks
    from harness.admin import AdminClient, ConfigLoad, DataPlane, NodeInfo, ReadOnlyAdmin, StatusClient
    from harness.checks.shift import Shift
    from harness.compat import Finding, Version, check_upgrade, explain, hybrid_compatible
    from harness.config import NormalConfig, normalise
    from harness.config_capture import capture, capture_declarative, render_declarative
    from harness.config_diff import AllowRule, ConfigDiff, diff
    from harness.config_redact import redact
    from harness.errors import (
        AdminAPIError,
        AnswerTooLarge,
        BadResponse,
        ConfigError,
        DeadlineExceeded,
        HarnessError,
        IncompatibleNodes,
        LedgerError,
        NodeError,
        NodeStartError,
        NodeTooSlow,
        NodeUnreachable,
        PlanError,
        ProbeError,
        ReadOnlyViolation,
        TrafficError,
        WaitTimeout,
    )
    from harness.exitcodes import EXIT_NOT_JUDGED
    from harness.ledger import STAGES, Ledger, Verdict
    from harness.messages import (
        behaviour_difference,
        config_drift,
        could_not_judge,
        gate_failed,
        infrastructure_problem,
    )
    from harness.plan import Plan, load_plan, parse_plan
    from harness.record import RunRecord, build_summary
    from harness.run.context import RunContext
    from harness.summary import ParitySummary
    from harness.wait import wait_until

#: each public name -> the module that owns it (a subpackage exports itself)
_OWNER: dict[str, str] = {
    "EXIT_NOT_JUDGED": "harness.exitcodes",
    "STAGES": "harness.ledger",
    "AdminAPIError": "harness.errors",
    "AdminClient": "harness.admin",
    "AllowRule": "harness.config_diff",
    "AnswerTooLarge": "harness.errors",
    "BadResponse": "harness.errors",
    "ConfigDiff": "harness.config_diff",
    "ConfigError": "harness.errors",
    "ConfigLoad": "harness.admin",
    "DataPlane": "harness.admin",
    "DeadlineExceeded": "harness.errors",
    "Finding": "harness.compat",
    "HarnessError": "harness.errors",
    "IncompatibleNodes": "harness.errors",
    "Ledger": "harness.ledger",
    "LedgerError": "harness.errors",
    "NodeError": "harness.errors",
    "NodeInfo": "harness.admin",
    "NodeStartError": "harness.errors",
    "NodeTooSlow": "harness.errors",
    "NodeUnreachable": "harness.errors",
    "NormalConfig": "harness.config",
    "ParitySummary": "harness.summary",
    "Plan": "harness.plan",
    "PlanError": "harness.errors",
    "ProbeError": "harness.errors",
    "ReadOnlyAdmin": "harness.admin",
    "ReadOnlyViolation": "harness.errors",
    "RunContext": "harness.run.context",
    "RunRecord": "harness.record",
    "Shift": "harness.checks.shift",
    "StatusClient": "harness.admin",
    "TrafficError": "harness.errors",
    "Verdict": "harness.ledger",
    "Version": "harness.compat",
    "WaitTimeout": "harness.errors",
    "behaviour_difference": "harness.messages",
    "build_summary": "harness.record",
    "capture": "harness.config_capture",
    "capture_declarative": "harness.config_capture",
    "check_upgrade": "harness.compat",
    "checks": "harness.checks",
    "config_drift": "harness.messages",
    "could_not_judge": "harness.messages",
    "diff": "harness.config_diff",
    "explain": "harness.compat",
    "gate_failed": "harness.messages",
    "hybrid_compatible": "harness.compat",
    "infrastructure_problem": "harness.messages",
    "load_plan": "harness.plan",
    "normalise": "harness.config",
    "parse_plan": "harness.plan",
    "redact": "harness.config_redact",
    "render_declarative": "harness.config_capture",
    "wait_until": "harness.wait",
}

__all__ = [
    "EXIT_NOT_JUDGED",
    "STAGES",
    "AdminAPIError",
    "AdminClient",
    "AllowRule",
    "AnswerTooLarge",
    "BadResponse",
    "ConfigDiff",
    "ConfigError",
    "ConfigLoad",
    "DataPlane",
    "DeadlineExceeded",
    "Finding",
    "HarnessError",
    "IncompatibleNodes",
    "Ledger",
    "LedgerError",
    "NodeError",
    "NodeInfo",
    "NodeStartError",
    "NodeTooSlow",
    "NodeUnreachable",
    "NormalConfig",
    "ParitySummary",
    "Plan",
    "PlanError",
    "ProbeError",
    "ReadOnlyAdmin",
    "ReadOnlyViolation",
    "RunContext",
    "RunRecord",
    "Shift",
    "StatusClient",
    "TrafficError",
    "Verdict",
    "Version",
    "WaitTimeout",
    "behaviour_difference",
    "build_summary",
    "capture",
    "capture_declarative",
    "check_upgrade",
    "checks",
    "config_drift",
    "could_not_judge",
    "diff",
    "explain",
    "gate_failed",
    "hybrid_compatible",
    "infrastructure_problem",
    "load_plan",
    "normalise",
    "parse_plan",
    "redact",
    "render_declarative",
    "wait_until",
]


def __getattr__(name: str) -> object:
    owner = _OWNER.get(name)
    if owner is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    module = importlib.import_module(owner)
    value: object = module if owner == f"harness.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
