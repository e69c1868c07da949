"""kong-upgrade-harness: the library behind the gated upgrade stages. It never imports pytest.

The suites import only from here; ``tests/unit/test_exports.py`` pins this surface. The stage
checks (``harness.checks.*``) take the run context's parts and return typed results; the message
constructors (``gate_failed``, ``config_drift`` ...) start the failure messages that the Allure
categories sort.
"""

from harness.admin import AdminClient, ConfigLoad, DataPlane, NodeInfo, ReadOnlyAdmin, StatusClient
from harness.checks.backup import Backup, capture_backup, load_backup, restore_diff
from harness.checks.considerations import Review, breaking_changes
from harness.checks.decommission import Retired, Soak, retire_x, soak
from harness.checks.deploy import y_version_mismatches
from harness.checks.preflight import freeze_hash, plan_problems, x_config_hashes, x_mismatches
from harness.checks.scale import smoke
from harness.checks.shift import Shift, StepOutcome, gate_config
from harness.checks.staging import (
    KEY_AUTH_CASES,
    CaseOutcome,
    DataPlaneReport,
    DifferentialReport,
    config_parity,
    data_plane_report,
    differential,
    key_auth_case,
)
from harness.compat import Finding, Version, check_upgrade, explain, hybrid_compatible
from harness.config import (
    AllowRule,
    ConfigDiff,
    NormalConfig,
    capture,
    capture_declarative,
    diff,
    normalise,
    redact,
    render_declarative,
)
from harness.errors import (
    AdminAPIError,
    BadResponse,
    ConfigError,
    HarnessError,
    LedgerError,
    NodeError,
    NodeStartError,
    NodeUnreachable,
    PlanError,
    ProbeError,
    ReadOnlyViolation,
    TrafficError,
    WaitTimeout,
)
from harness.ledger import STAGES, Ledger, Verdict
from harness.messages import behaviour_difference, config_drift, gate_failed, infrastructure_problem
from harness.plan import Plan, load_plan, parse_plan
from harness.record import RunRecord, build_summary
from harness.run.context import RunContext
from harness.summary import ParitySummary
from harness.wait import wait_until

__all__ = [
    "KEY_AUTH_CASES",
    "STAGES",
    "AdminAPIError",
    "AdminClient",
    "AllowRule",
    "Backup",
    "BadResponse",
    "CaseOutcome",
    "ConfigDiff",
    "ConfigError",
    "ConfigLoad",
    "DataPlane",
    "DataPlaneReport",
    "DifferentialReport",
    "Finding",
    "HarnessError",
    "Ledger",
    "LedgerError",
    "NodeError",
    "NodeInfo",
    "NodeStartError",
    "NodeUnreachable",
    "NormalConfig",
    "ParitySummary",
    "Plan",
    "PlanError",
    "ProbeError",
    "ReadOnlyAdmin",
    "ReadOnlyViolation",
    "Retired",
    "Review",
    "RunContext",
    "RunRecord",
    "Shift",
    "Soak",
    "StatusClient",
    "StepOutcome",
    "TrafficError",
    "Verdict",
    "Version",
    "WaitTimeout",
    "behaviour_difference",
    "breaking_changes",
    "build_summary",
    "capture",
    "capture_backup",
    "capture_declarative",
    "check_upgrade",
    "config_drift",
    "config_parity",
    "data_plane_report",
    "diff",
    "differential",
    "explain",
    "freeze_hash",
    "gate_config",
    "gate_failed",
    "hybrid_compatible",
    "infrastructure_problem",
    "key_auth_case",
    "load_backup",
    "load_plan",
    "normalise",
    "parse_plan",
    "plan_problems",
    "redact",
    "render_declarative",
    "restore_diff",
    "retire_x",
    "smoke",
    "soak",
    "wait_until",
    "x_config_hashes",
    "x_mismatches",
    "y_version_mismatches",
]
