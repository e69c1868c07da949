"""kong-upgrade-harness: the library behind the gated upgrade stages. It never imports pytest.

The suites import only from here; ``tests/unit/test_exports.py`` pins this surface. The stage
checks (``harness.checks.*``) take the run context's parts and return typed results; the message
constructors (``gate_failed``, ``config_drift`` ...) start the failure messages that the Allure
categories sort.
"""

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
