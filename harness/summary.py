"""What a run produced, as frozen values the report writers read.

The suites fill a :class:`RunSummary` (through the reporting fixture) and hand it to the writers:
``write_signoff`` (one HTML page + PNG charts), ``write_environment`` (Allure). The summary is
also stored as ``summary.json`` in the run folder (``to_json`` / ``from_json`` round-trip), so a
page can be rendered again later without re-running anything.

Units, once: shares and error rates are fractions 0..1; ``weight_y`` is the percentage of traffic
the splitter was told to send to Y (0..100); latencies are milliseconds; times are aware UTC
datetimes. ``None`` means "no figure" (e.g. no request reached X at 100 % Y).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from harness.config_diff import ConfigDiff

# "not-judged": the harness could not judge (a node or the splitter did not start, an inconclusive
# step, a deliberate pause); "interrupted": the run stopped before its checks had all run
VERDICTS = ("passed", "failed", "not-judged", "interrupted", "incomplete")
STAGE_OUTCOMES = ("passed", "failed", "skipped", "interrupted", "paused", "not-run")
STEP_OUTCOMES = ("pass", "fail", "inconclusive")
CLUSTERS = ("x", "y")
SEVERITIES = ("error", "warning", "info")
SCHEMA = 1


def _one_of(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{what} is {value!r}; expected one of {', '.join(valid)}")


def _utc(what: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} is {value.isoformat()} without a zone; expected an aware datetime (UTC)")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class NodeInfo:
    """One Kong node of the run: ``cluster`` x|y, ``role`` dbless|cp|dp|traditional; ``provider``
    process|docker|existing; ``state`` where the node was when the run ended, in words."""

    name: str
    spec: str
    cluster: str
    role: str
    version: str
    provider: str = ""
    state: str = ""

    def __post_init__(self) -> None:
        _one_of(f"node {self.name!r} cluster", self.cluster, CLUSTERS)


@dataclass(frozen=True)
class StageResult:
    """One gated stage: outcome, how long it took, and the one figure that judged it."""

    name: str
    outcome: str
    duration_s: float = 0.0
    key_figure: str = ""
    message: str = ""
    cause: str = ""        # check | not-judged | internal | interrupted | paused (why it did not pass)

    def __post_init__(self) -> None:
        _one_of(f"stage {self.name!r} outcome", self.outcome, STAGE_OUTCOMES)


@dataclass(frozen=True)
class Threshold:
    """One gate check of a traffic step as k6 prints a threshold: name, observed, limit, outcome."""

    name: str
    observed: str          # "2.13 %", "812.3 ms", "375"
    limit: str             # "<= 1.00 %", ">= 40"
    outcome: str           # pass | fail | inconclusive
    explanation: str = ""

    def __post_init__(self) -> None:
        _one_of(f"threshold {self.name!r} outcome", self.outcome, STEP_OUTCOMES)

    def line(self, width: int = 22) -> str:
        mark = {"pass": "\u2713", "fail": "\u2717", "inconclusive": "?"}[self.outcome]
        return f"{mark} {self.name + ' ':.<{width}} {self.observed} {self.limit}".rstrip()


@dataclass(frozen=True)
class StepResult:
    """One traffic step: the weight asked for, what was measured on X and Y, and the gate's word."""

    weight_y: int          # the plan's step, a whole percentage
    requests: int
    share_y: float
    errors_x: int
    errors_y: int
    error_rate_x: float | None
    error_rate_y: float | None
    p50_x: float | None
    p50_y: float | None
    p99_x: float | None
    p99_y: float | None
    outcome: str
    reason: str = ""
    thresholds: tuple[Threshold, ...] = ()   # every gate check of the step, k6-style

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(self.thresholds))
        _one_of(f"step {self.weight_y}% outcome", self.outcome, STEP_OUTCOMES)
        if not 0 <= self.weight_y <= 100:
            raise ValueError(f"step weight_y is {self.weight_y}; expected a percentage 0..100")
        if not 0 <= self.share_y <= 1:
            raise ValueError(f"step {self.weight_y}% share_y is {self.share_y}; expected a fraction 0..1")


@dataclass(frozen=True)
class ParitySummary:
    """Config parity X vs Y: counts of differences and the diff as decK prints one.

    ``added``/``removed``/``changed`` count differences the plan does NOT allow (they fail the
    parity stage); ``allowed`` counts differences the plan allows (listed, not failing). ``lines``
    is the decK-style diff (``creating``/``updating``/``deleting`` per entity, ``field: old -> new``,
    then ``Summary: Created N Updated N Deleted N``), shown with the title ``title``.
    """

    added: int = 0
    removed: int = 0
    changed: int = 0
    allowed: int = 0
    lines: tuple[str, ...] = ()
    title: str = "Config parity X vs Y"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))

    @property
    def clean(self) -> bool:
        return self.added == self.removed == self.changed == 0

    @classmethod
    def of(cls, result: ConfigDiff, *, title: str = "Config parity X vs Y", limit: int = 40) -> ParitySummary:
        """The counts and the decK-style lines of a diff (at most ``limit`` entities shown)."""
        from harness.deckdiff import deck_lines

        return cls(len(result.added), len(result.removed), len(result.changed), len(result.allowed),
                   deck_lines(result, limit=limit), title)


@dataclass(frozen=True)
class Finding:
    """A breaking-change rule X -> Y met by this configuration (from harness.compat), once per rule,
    with every entity it applies to by name (``route 'health-check'``, ``plugin key-auth on route
    'orders'``): ``severity`` error|warning|info, the Kong version that introduced the change."""

    id: str
    severity: str
    title: str
    advice: str = ""
    entities: tuple[str, ...] = ()
    introduced_in: str = ""
    accepted: str = ""     # the plan's reason, when the plan accepts the finding

    def __post_init__(self) -> None:
        _one_of(f"finding {self.id!r} severity", self.severity, SEVERITIES)
        object.__setattr__(self, "entities", tuple(self.entities))


@dataclass(frozen=True)
class Rollback:
    """Evidence that traffic went back to X: why, how fast it was proven, and Y hits afterwards."""

    reason: str
    seconds_to_proof: float
    requests_after: int
    y_hits_after: int


@dataclass(frozen=True)
class RunSummary:
    """Everything the sign-off page shows about one run."""

    plan_name: str
    plan_path: str
    mode: str
    verdict: str
    started: datetime
    finished: datetime
    git_commit: str
    x_version: str
    y_version: str
    splitter: str
    nodes: tuple[NodeInfo, ...] = ()
    stages: tuple[StageResult, ...] = ()
    steps: tuple[StepResult, ...] = ()
    parity: ParitySummary | None = None
    findings: tuple[Finding, ...] = ()
    rollback: Rollback | None = None
    failing_stage: str | None = None
    headline: str = ""          # a failing run: the first failing check's own one-line message
    resume_command: str = ""    # the exact command that resumes the run once the problem is fixed
    next_step: str = ""         # what to fix first, in words
    drift: ParitySummary | None = None   # config drift on X (the freeze failed), decK-style
    run_dir: str = ""

    def __post_init__(self) -> None:
        _one_of("run verdict", self.verdict, VERDICTS)
        object.__setattr__(self, "started", _utc("run started", self.started))
        object.__setattr__(self, "finished", _utc("run finished", self.finished))
        # accept lists from callers, keep tuples inside (frozen all the way down)
        for name in ("nodes", "stages", "steps", "findings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.failing_stage is not None and self.failing_stage not in {s.name for s in self.stages}:
            raise ValueError(
                f"failing_stage is {self.failing_stage!r}; expected one of the stages "
                f"({', '.join(s.name for s in self.stages) or 'none given'})"
            )

    @property
    def duration_s(self) -> float:
        return (self.finished - self.started).total_seconds()

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        data["started"] = _iso(self.started)
        data["finished"] = _iso(self.finished)
        data["schema"] = SCHEMA
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RunSummary:
        """The summary a ``to_dict`` wrote. The record classes are the schema: pydantic reads the
        document against them (lists become tuples, ISO times datetimes) and each record's own
        ``__post_init__`` checks still run; anything missing or mistyped is named in the error."""
        from pydantic import ValidationError

        try:
            return _reader().validate_python(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the document"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise HarnessError(
                f"run summary cannot be read: {where}: {first['msg']}{more}",
                hint="the file was written by another version or edited by hand; re-run the plan "
                "or fix the field named above",
            ) from None

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HarnessError(
                f"run summary is not JSON: {exc}", hint="check summary.json in the run folder"
            ) from exc
        if not isinstance(data, dict):
            raise HarnessError(
                f"run summary is a JSON {type(data).__name__}; expected an object",
                hint="check summary.json in the run folder",
            )
        return cls.from_dict(data)


@functools.cache
def _reader() -> TypeAdapter[RunSummary]:
    from pydantic import TypeAdapter

    return TypeAdapter(RunSummary)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
