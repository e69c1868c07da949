"""kong-upgrade-harness: the library behind the gated upgrade stages. It never imports pytest."""

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
from harness.wait import wait_until

__all__ = sorted(
    [
        "AdminAPIError",
        "BadResponse",
        "ConfigError",
        "HarnessError",
        "LedgerError",
        "NodeError",
        "NodeStartError",
        "NodeUnreachable",
        "PlanError",
        "ProbeError",
        "ReadOnlyViolation",
        "TrafficError",
        "WaitTimeout",
        "wait_until",
    ]
)
