"""What every metrics source gives the gates: per-node counters since the last read.

A source (the probe, the balancer, Kong's Prometheus plugin) answers two questions:

    available() -> (True, "what it reads") | (False, "why not, and what the gates use instead")
    read()      -> Reading: per node, the answers since the last read, the failures, status classes
                   and latencies

Latencies come in three tuples per node, one entry per answer: ``figure_ms`` (what reports show),
``low_ms`` and ``high_ms`` (bounds the true latency lies within). A source with exact per-request
timers gives the same tuple three times; the balancer's millisecond timers give +-1 ms; a Prometheus
histogram gives each answer its bucket's bounds. The sequential latency test then compares Y's *lower*
bounds with X's *upper* bounds (:meth:`Reading.batch`): if Y is at most the practical shift slower than X,
so are Y's lower bounds than X's upper bounds, so the test stays valid on bucketed data; the price is
power (a shift must exceed the practical limit by about a bucket's width to be seen).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from harness.model import Side
from harness.sequential import Batch
from harness.stats import percentile

SourceName = Literal["probe", "balancer", "prometheus"]
#: where a step's latency figures and latency test come from, first available wins (issue 12: the balancer
#: sees every request without the Python client's cost; Prometheus has only buckets; the probe last)
LATENCY_ORDER: tuple[SourceName, ...] = ("balancer", "prometheus", "probe")
LatencyKind = Literal["samples", "histogram", "none"]


def status_class(status: int) -> str:
    """``503`` -> ``"5xx"``."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


@dataclass(frozen=True)
class NodeCounts:
    """One node's answers over some interval. ``failed`` is included in ``answers``."""

    node: str
    side: Side
    answers: int = 0
    failed: int = 0
    classes: Mapping[str, int] = field(default_factory=dict)
    figure_ms: tuple[float, ...] = field(default=(), repr=False)
    low_ms: tuple[float, ...] = field(default=(), repr=False)
    high_ms: tuple[float, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", MappingProxyType(dict(self.classes)))

    def plus(self, other: NodeCounts) -> NodeCounts:
        classes = Counter(self.classes)
        classes.update(other.classes)
        return NodeCounts(self.node, self.side, self.answers + other.answers, self.failed + other.failed,
                          dict(classes), self.figure_ms + other.figure_ms, self.low_ms + other.low_ms,
                          self.high_ms + other.high_ms)


def samples(node: str, side: Side, answers: Iterable[tuple[int, float]], *, resolution_ms: float = 0.0,
            failed: Iterable[bool] | None = None) -> NodeCounts:
    """NodeCounts from (status, latency ms) per answer; a status of 500 or more fails unless ``failed`` says.
    ``resolution_ms``: how far the true latency may be from the recorded one (timers in whole ms: 1)."""
    pairs = list(answers)
    flags = list(failed) if failed is not None else [status >= 500 for status, _ in pairs]
    figure = tuple(float(ms) for _, ms in pairs)
    if resolution_ms:
        low = tuple(max(0.0, ms - resolution_ms) for ms in figure)
        high = tuple(ms + resolution_ms for ms in figure)
    else:
        low = high = figure
    return NodeCounts(node, side, len(pairs), sum(flags), dict(Counter(status_class(s) for s, _ in pairs)),
                      figure, low, high)


@dataclass(frozen=True)
class SideCounts:
    """One side's answers summed over its nodes, and the figures the reports show."""

    side: Side
    answers: int
    failed: int
    figure_ms: tuple[float, ...] = field(repr=False)
    low_ms: tuple[float, ...] = field(repr=False)
    high_ms: tuple[float, ...] = field(repr=False)

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.answers if self.answers else None

    def p(self, q: float) -> float | None:
        return percentile(self.figure_ms, q)


@dataclass(frozen=True)
class Reading:
    """What one source saw since its last read (or, summed with :meth:`plus`, over a step)."""

    source: str
    nodes: Mapping[str, NodeCounts]
    latency: LatencyKind = "samples"
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))

    @classmethod
    def empty(cls, source: str, latency: LatencyKind = "samples") -> Reading:
        return cls(source, {}, latency)

    @classmethod
    def of(cls, source: str, counts: Sequence[NodeCounts], latency: LatencyKind = "samples",
           notes: Sequence[str] = ()) -> Reading:
        nodes: dict[str, NodeCounts] = {}
        for c in counts:
            nodes[c.node] = nodes[c.node].plus(c) if c.node in nodes else c
        return cls(source, nodes, latency, tuple(notes))

    def plus(self, other: Reading) -> Reading:
        nodes = dict(self.nodes)
        for name, c in other.nodes.items():
            nodes[name] = nodes[name].plus(c) if name in nodes else c
        notes = self.notes + tuple(n for n in other.notes if n not in self.notes)
        return Reading(self.source, nodes, self.latency, notes)

    def side(self, side: Side) -> SideCounts:
        mine = [c for c in self.nodes.values() if c.side == side]
        return SideCounts(side, sum(c.answers for c in mine), sum(c.failed for c in mine),
                          tuple(v for c in mine for v in c.figure_ms), tuple(v for c in mine for v in c.low_ms),
                          tuple(v for c in mine for v in c.high_ms))

    @property
    def answers(self) -> int:
        return sum(c.answers for c in self.nodes.values())

    @property
    def share_y(self) -> float | None:
        total = self.answers
        return self.side("y").answers / total if total else None

    def batch(self, seconds: float, *, latency: bool = True) -> Batch:
        """The sequential gate's batch: counts per side; latencies (Y's lower bounds against X's upper
        bounds, see the module docstring) only when ``latency`` and the source has any."""
        x, y = self.side("x"), self.side("y")
        with_latency = latency and self.latency != "none"
        return Batch(seconds, x.answers, x.failed, y.answers, y.failed,
                     x.high_ms if with_latency else (), y.low_ms if with_latency else ())

    def breakdown(self, side: Side) -> str:
        """``y2 answered 668 of 668 with 5xx; y1 0 of 325``: the worst node first."""
        mine = sorted((c for c in self.nodes.values() if c.side == side), key=lambda c: (-c.failed, c.node))
        parts = []
        for i, c in enumerate(mine):
            if i == 0:
                classes = ", ".join(f"{k}: {v}" for k, v in sorted(c.classes.items()) if k[0] in "5o")
                parts.append(f"{c.node} answered {c.failed} of {c.answers} with 5xx"
                             + (f" ({classes})" if classes and c.failed else ""))
            else:
                parts.append(f"{c.node} {c.failed} of {c.answers}")
        return "; ".join(parts)


@runtime_checkable
class Source(Protocol):
    """A place the gates read traffic from. ``read`` returns what happened since the previous read."""

    name: str

    def available(self) -> tuple[bool, str]: ...

    def read(self) -> Reading: ...

    def close(self) -> None: ...


@dataclass
class Unavailable:
    """A source that cannot be read here; the step's report says why."""

    name: str
    why: str

    def available(self) -> tuple[bool, str]:
        return False, self.why

    def read(self) -> Reading:
        return Reading.empty(self.name, "none")

    def close(self) -> None:
        return None
