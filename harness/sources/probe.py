"""The probe as a metrics source: the harness's own open-loop requests, each answer attributed to its node.

The probe knows more than the other sources: the status each request should get (a 401 that X also gives
is no failure, a 200 where X gives 401 is), and exact latencies. It also carries the Python client's
own cost, which is why the step's latency comes from the balancer or Prometheus first when they are on.
Its records stay with the source for the step's window, the fixed-window gate and the evidence CSV.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.model import ProbeRecord
from harness.sources.base import NodeCounts, Reading, samples
from harness.traffic.probe import Probe


def reading_of_records(records: Sequence[ProbeRecord]) -> Reading:
    """Per node: the probe's answers (failed = not what a healthy gateway gives). Probe errors and answers
    without a side are no evidence about either side (the probe's own checks see them)."""
    per: dict[tuple[str, str], list[ProbeRecord]] = {}
    for r in records:
        if r.status is None or r.side is None:
            continue
        per.setdefault((r.node or f"({r.side})", r.side), []).append(r)
    counts: list[NodeCounts] = []
    for (node, side), mine in per.items():
        counts.append(samples(node, side, [(r.status or 0, r.latency_ms) for r in mine],  # type: ignore[arg-type]
                              failed=[r.failed for r in mine]))
    return Reading.of("probe", counts, "samples")


class ProbeSource:
    """Reads the running probe's new records; :attr:`records` holds those of the step since :meth:`begin`."""

    name = "probe"

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.opened = probe.now()
        self.records: list[ProbeRecord] = []

    def begin(self) -> float:
        """A new step: forget what came before; requests scheduled from now on count. Returns the epoch."""
        self.opened = self.probe.now()
        self.probe.take_window()
        self.records = []
        return self.opened

    def available(self) -> tuple[bool, str]:
        return True, f"the probe's own requests ({self.probe.rate:g} req/s open loop, Python client timers)"

    def read(self) -> Reading:
        batch = [r for r in self.probe.take_window().records if r.scheduled >= self.opened]
        self.records += batch
        return reading_of_records(batch)

    def close(self) -> None:
        return None
