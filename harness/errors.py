"""The harness's one exception tree.

    HarnessError                 every error the harness raises on purpose
    ├── PlanError                the upgrade plan file is invalid (names the field and what is valid)
    ├── NodeError                a Kong node misbehaves
    │   ├── NodeUnreachable      no TCP/HTTP answer within the timeout
    │   │   └── NodeTooSlow      a call did not finish within its total deadline (also a DeadlineExceeded)
    │   ├── BadResponse          an answer that is not what Kong sends (garbage, wrong shape)
    │   │   └── AnswerTooLarge   an answer over the client's size cap (reading stopped at the cap)
    │   └── NodeStartError       a node the harness started did not become ready
    ├── DeadlineExceeded         a total deadline passed (what, where, the limit, the time taken)
    ├── IncompatibleNodes        Y's own nodes refuse each other (a CP refuses its DP): a verdict on Y
    ├── AdminAPIError            Kong answered with an error status; carries Kong's own message
    ├── ReadOnlyViolation        a write was attempted through cluster X's read-only view
    ├── ConfigError              a declarative configuration is invalid or cannot be captured
    ├── TrafficError             a splitter failed (start, weight change, user command)
    ├── ProbeError               the probe could not run
    ├── WaitTimeout              a polled condition did not hold in time (says what, where, last seen)
    └── LedgerError              a stage cannot run or resume (names the missing verdict)

Every message says what was involved, what was expected, what was seen, and what to do next.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose.

    ``hint`` is the next step for the person reading the message; it is appended to ``str()``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  next step: {self.hint}"
        return self.message


class PlanError(HarnessError):
    """The upgrade plan is invalid."""


class NodeError(HarnessError):
    """A Kong node misbehaves."""


class NodeUnreachable(NodeError):
    """A node gave no answer."""


class BadResponse(NodeError):
    """A node answered something Kong would not send."""


class NodeStartError(NodeError):
    """A node the harness started did not become ready."""


class AdminAPIError(HarnessError):
    """Kong's Admin or Status API answered with an error status.

    ``status`` is the HTTP status, ``kong_message`` Kong's ``message`` field, ``code`` and ``name``
    Kong's error code and name where the body had them (e.g. 12 / "operation unsupported").
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        kong_message: str | None = None,
        code: int | None = None,
        name: str | None = None,
        body: object = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.kong_message = kong_message
        self.code = code
        self.name = name
        self.body = body


class ReadOnlyViolation(HarnessError):
    """A write was attempted through a read-only view (cluster X is never written to)."""


class ConfigError(HarnessError):
    """A declarative configuration is invalid or cannot be captured."""


class TrafficError(HarnessError):
    """A traffic splitter failed."""


class ProbeError(HarnessError):
    """The probe could not run."""


class WaitTimeout(HarnessError):
    """A polled condition did not hold in time."""


class LedgerError(HarnessError):
    """A stage cannot run or resume."""


class DeadlineExceeded(HarnessError):
    """A total deadline passed: names what timed out, where, its limit, how long it ran, and the next step.

    ``what``, ``where``, ``seconds`` (the limit) and ``elapsed`` are kept for callers and reports.
    """

    def __init__(self, message: str, *, hint: str | None = None, what: str = "", where: str = "",
                 seconds: float = 0.0, elapsed: float = 0.0) -> None:
        super().__init__(message, hint=hint)
        self.what = what
        self.where = where
        self.seconds = seconds
        self.elapsed = elapsed


class NodeTooSlow(NodeUnreachable, DeadlineExceeded):
    """A call to a node did not finish within its total deadline (a silent, dripping or stuck node).

    Both a :class:`NodeUnreachable` (callers that handle a node that does not answer handle it) and a
    :class:`DeadlineExceeded` (what, where, the limit and the time taken).
    """


class AnswerTooLarge(BadResponse):
    """A node's answer was larger than the client's maximum answer size; reading stopped at the limit."""


class IncompatibleNodes(HarnessError):
    """Y's own nodes refuse each other, e.g. a control plane lists a data plane as incompatible: a verdict on Y
    (the plan's versions cannot work together), not a machinery failure."""
