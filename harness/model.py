"""The records every layer shares: nodes as values, the probe's per-request records and windows.

They live here, in the core, so that the subpackages (nodes/, traffic/, report/) and the core
modules that judge them (gates, record) point one way: subpackages build on the core, never the
reverse. Everything here is a frozen value; nothing does I/O except ``ProbeWindow.to_csv``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from harness.stats import percentile

Side = Literal["x", "y"]

# ---- nodes -----------------------------------------------------------------------------------------

Role = Literal["dbless", "cp", "dp"]
Cluster = Literal["x", "y"]


@dataclass(frozen=True)
class ClusterCert:
    """Paths of the shared hybrid-mode certificate and key (cluster_mtls = shared)."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class Node:
    """One Kong node as the harness sees it. DPs have no admin URL (Kong gives them no Admin API)."""

    name: str                      # "x1", "y2", "cp-y", "dp-y1": unique within a run
    spec: str                      # the node spec it came from, also its test id (STYLE.md #3)
    cluster: Cluster
    role: Role
    version: str | None
    admin_url: str | None
    proxy_url: str | None
    status_url: str | None
    provider: str = "existing"     # "process" | "docker" | "existing"
    owned: bool = False            # True when the harness started it and will stop it
    handle: str | None = None      # provider id: pid or container id
    cluster_address: str | None = None  # CP only: "host:port" a DP of the same provider dials

    def __str__(self) -> str:
        return f"{self.name}[{self.spec}]"


@dataclass(frozen=True)
class NodeState:
    """What a node is doing now (``NodeProvider.state``).

    ``status`` is Docker's (``running``, ``exited``, ``dead``, ``restarting`` ...), ``missing`` when the
    container is gone without the harness stopping it, or ``stopped`` when the harness stopped it.
    """

    node: str
    status: str
    exit_code: int | None = None
    log_tail: str = field(default="", repr=False)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def exited(self) -> bool:
        """True when it stopped without being asked to (crashed, killed, or removed behind our back)."""
        return self.status in ("exited", "dead", "missing")

    def __str__(self) -> str:
        if self.status == "running":
            return f"{self.node} is running"
        code = f" with code {self.exit_code}" if self.exit_code is not None else ""
        lines = "\n".join("    " + line for line in self.log_tail.splitlines()) or "    (no output)"
        return f"{self.node} {self.status}{code}; its last log lines:\n{lines}"



# ---- the probe's records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeRecord:
    """What happened to one scheduled request. Times are epoch seconds.

    ``status`` is None when no HTTP answer came (then ``error`` says why: connect, timeout,
    protocol, ...). ``ok`` is whether the status is what the request expected.
    """

    seq: int
    request: str
    method: str
    path: str
    scheduled: float
    sent: float
    done: float
    side: Side | None
    node: str | None
    status: int | None
    latency_ms: float
    error: str | None
    pinned: bool
    ok: bool
    retries: int = 0   # idempotent request resent once after the server closed a kept-alive connection

    @property
    def failed(self) -> bool:
        """An HTTP answer that is not what a healthy gateway gives (5xx, or a wrong status)."""
        return self.status is not None and not self.ok

    @property
    def probe_error(self) -> bool:
        """No HTTP answer at all (connection refused, timeout, broken response)."""
        return self.status is None

    @property
    def lag_ms(self) -> float:
        return (self.sent - self.scheduled) * 1000.0


CSV_FIELDS = (
    "seq", "request", "method", "path", "scheduled", "sent", "done", "side", "node", "status",
    "latency_ms", "error", "pinned", "ok",
)


@dataclass(frozen=True)
class SideFigures:
    """One side's share of a window. Latencies are of every HTTP answer from that side."""

    side: Side
    count: int
    failed: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    statuses: Mapping[int, int]
    latencies_ms: tuple[float, ...] = field(repr=False)

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.count if self.count else None

    @classmethod
    def of(cls, side: Side, records: Sequence[ProbeRecord]) -> SideFigures:
        answered = [r for r in records if r.side == side and r.status is not None]
        latencies = tuple(r.latency_ms for r in answered)
        return cls(
            side=side,
            count=len(answered),
            failed=sum(1 for r in answered if r.failed),
            p50_ms=percentile(latencies, 50),
            p90_ms=percentile(latencies, 90),
            p99_ms=percentile(latencies, 99),
            statuses=MappingProxyType(dict(Counter(r.status for r in answered if r.status is not None))),
            latencies_ms=latencies,
        )


@dataclass(frozen=True)
class ProbeWindow:
    """The records of one stretch of probing and the figures the gates read."""

    records: tuple[ProbeRecord, ...] = field(repr=False)
    label: str
    weights: tuple[int, int] | None
    started: float | None
    ended: float | None
    count: int
    x: SideFigures
    y: SideFigures
    unattributed: int      # HTTP answers with no side: missing data
    probe_errors: int      # no HTTP answer: connection refused, timeout, broken response
    lag_p99_ms: float | None
    late: int              # records sent more than LATE_MS after their scheduled time
    retried: int = 0       # records whose request was resent once on a fresh connection

    # a send this late distorts what the gates judge (latency counts from the scheduled time; the
    # latency-shift limit is 25 ms by default); a few ms of asyncio lag on a busy 2-core machine do not
    LATE_MS = 50.0

    @classmethod
    def of(
        cls, records: Sequence[ProbeRecord], *, label: str = "", weights: tuple[int, int] | None = None
    ) -> ProbeWindow:
        records = tuple(records)
        lags = [r.lag_ms for r in records]
        return cls(
            records=records,
            label=label,
            weights=weights,
            started=min((r.scheduled for r in records), default=None),
            ended=max((r.done for r in records), default=None),
            count=len(records),
            x=SideFigures.of("x", records),
            y=SideFigures.of("y", records),
            unattributed=sum(1 for r in records if r.status is not None and r.side is None),
            probe_errors=sum(1 for r in records if r.probe_error),
            lag_p99_ms=percentile(lags, 99),
            late=sum(1 for lag in lags if lag > cls.LATE_MS),
            retried=sum(1 for r in records if r.retries),
        )

    def sent_after(self, epoch: float) -> ProbeWindow:
        """The same window with only the requests sent at or after ``epoch``."""
        return ProbeWindow.of([r for r in self.records if r.sent >= epoch], label=self.label,
                              weights=self.weights)

    @property
    def share_y(self) -> float | None:
        """Fraction of attributed answers that came from Y (None without any)."""
        total = self.x.count + self.y.count
        return self.y.count / total if total else None

    @property
    def probe_error_rate(self) -> float | None:
        """Probe errors plus unattributed answers, over all records."""
        return (self.probe_errors + self.unattributed) / self.count if self.count else None

    def side(self, side: Side) -> SideFigures:
        return self.x if side == "x" else self.y

    def summary(self) -> dict[str, object]:
        """The figures without the records, for reports and logs."""
        def figures(s: SideFigures) -> dict[str, object]:
            return {
                "count": s.count, "failed": s.failed, "error_rate": s.error_rate, "p50_ms": s.p50_ms,
                "p90_ms": s.p90_ms, "p99_ms": s.p99_ms, "statuses": dict(s.statuses),
            }

        return {
            "label": self.label, "weights": self.weights, "count": self.count, "share_y": self.share_y,
            "x": figures(self.x), "y": figures(self.y), "unattributed": self.unattributed,
            "probe_errors": self.probe_errors, "lag_p99_ms": self.lag_p99_ms, "late": self.late,
            "retried": self.retried,
        }

    def csv_text(self) -> str:
        """One row per record (quoted: request names may hold commas). Request headers are never
        written; query values are masked."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for r in self.records:
            writer.writerow([
                r.seq, r.request, r.method, r.path, f"{r.scheduled:.6f}", f"{r.sent:.6f}",
                f"{r.done:.6f}", r.side or "", r.node or "", "" if r.status is None else r.status,
                f"{r.latency_ms:.3f}", r.error or "", int(r.pinned), int(r.ok),
            ])
        return buffer.getvalue()

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.csv_text())
        return path
