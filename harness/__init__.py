"""kong-upgrade-harness: the library behind the gated upgrade stages. It never imports pytest.

The suites import only from here; ``tests/unit/test_exports.py`` pins this surface.
"""

from harness.admin import AdminClient, ConfigLoad, DataPlane, NodeInfo, ReadOnlyAdmin, StatusClient
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
from harness.environment import UpgradeEnvironment
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
from harness.plan import Plan, load_plan, parse_plan
from harness.record import RunRecord, build_summary
from harness.staging import KEY_AUTH_CASES, breaking_changes, x_config_hashes
from harness.wait import wait_until

__all__ = [
    "KEY_AUTH_CASES",
    "STAGES",
    "AdminAPIError",
    "AdminClient",
    "AllowRule",
    "BadResponse",
    "ConfigDiff",
    "ConfigError",
    "ConfigLoad",
    "DataPlane",
    "Finding",
    "HarnessError",
    "Ledger",
    "LedgerError",
    "NodeError",
    "NodeInfo",
    "NodeStartError",
    "NodeUnreachable",
    "NormalConfig",
    "Plan",
    "PlanError",
    "ProbeError",
    "ReadOnlyAdmin",
    "ReadOnlyViolation",
    "RunRecord",
    "StatusClient",
    "TrafficError",
    "UpgradeEnvironment",
    "Verdict",
    "Version",
    "WaitTimeout",
    "breaking_changes",
    "build_summary",
    "capture",
    "capture_declarative",
    "check_upgrade",
    "diff",
    "explain",
    "hybrid_compatible",
    "load_plan",
    "normalise",
    "parse_plan",
    "redact",
    "render_declarative",
    "wait_until",
    "x_config_hashes",
]
