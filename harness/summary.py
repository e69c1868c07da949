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

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.config import ConfigDiff

VERDICTS = ("passed", "failed", "incomplete")
STAGE_OUTCOMES = ("passed", "failed", "skipped", "not-run")
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
    """One Kong node of the run: ``cluster`` x|y, ``role`` dbless|cp|dp|traditional."""

    name: str
    spec: str
    cluster: str
    role: str
    version: str

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

    def __post_init__(self) -> None:
        _one_of(f"stage {self.name!r} outcome", self.outcome, STAGE_OUTCOMES)


@dataclass(frozen=True)
class StepResult:
    """One traffic step: the weight asked for, what was measured on X and Y, and the gate's word."""

    weight_y: float
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

    def __post_init__(self) -> None:
        _one_of(f"step {self.weight_y}% outcome", self.outcome, STEP_OUTCOMES)
        if not 0 <= self.weight_y <= 100:
            raise ValueError(f"step weight_y is {self.weight_y}; expected a percentage 0..100")
        if not 0 <= self.share_y <= 1:
            raise ValueError(f"step {self.weight_y}% share_y is {self.share_y}; expected a fraction 0..1")


@dataclass(frozen=True)
class ParitySummary:
    """Config parity X vs Y: counts of differences and the first lines of the rendered diff.

    ``added``/``removed``/``changed`` count differences the plan does NOT allow (they fail the
    parity stage); ``allowed`` counts differences the plan allows (listed, not failing).
    """

    added: int = 0
    removed: int = 0
    changed: int = 0
    allowed: int = 0
    lines: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.added == self.removed == self.changed == 0

    @classmethod
    def of(cls, result: ConfigDiff) -> ParitySummary:
        """The counts and first twelve lines of a parity diff."""
        return cls(len(result.added), len(result.removed), len(result.changed), len(result.allowed),
                   tuple(result.render_text(limit=12).splitlines()[:12]))


@dataclass(frozen=True)
class Finding:
    """A breaking-change finding X -> Y (from harness.compat): ``severity`` error|warning|info."""

    id: str
    severity: str
    title: str
    advice: str = ""

    def __post_init__(self) -> None:
        _one_of(f"finding {self.id!r} severity", self.severity, SEVERITIES)


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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = _iso(self.started)
        data["finished"] = _iso(self.finished)
        data["schema"] = SCHEMA
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        try:
            parity = data.get("parity")
            rollback = data.get("rollback")
            return cls(
                plan_name=data["plan_name"],
                plan_path=data["plan_path"],
                mode=data["mode"],
                verdict=data["verdict"],
                started=_parse_time(data["started"]),
                finished=_parse_time(data["finished"]),
                git_commit=data["git_commit"],
                x_version=data["x_version"],
                y_version=data["y_version"],
                splitter=data["splitter"],
                nodes=tuple(NodeInfo(**n) for n in data.get("nodes", ())),
                stages=tuple(StageResult(**s) for s in data.get("stages", ())),
                steps=tuple(StepResult(**s) for s in data.get("steps", ())),
                parity=None if parity is None else ParitySummary(
                    **{**parity, "lines": tuple(parity.get("lines", ()))}
                ),
                findings=tuple(Finding(**f) for f in data.get("findings", ())),
                rollback=None if rollback is None else Rollback(**rollback),
                failing_stage=data.get("failing_stage"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(
                f"run summary cannot be read: {type(exc).__name__}: {exc}",
                hint="the file was written by another version or edited by hand; re-run the plan "
                "or fix the field named above",
            ) from exc

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


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone; expected UTC (ending in Z)")
    return value.astimezone(UTC)
