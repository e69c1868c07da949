"""Rollback with proof: all weight to X, then the probe must show X alone answering, without errors.

Proof is ``consecutive`` answers in a row, all sent after the weights changed, all from X and all
as expected. Any Y answer or any failure (HTTP or probe error) restarts the count. The times are
on the probe's clock (epoch seconds), so they line up with the probe records kept as evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.errors import ProbeError, TrafficError
from harness.model import ProbeRecord, ProbeWindow
from harness.traffic.base import Splitter
from harness.traffic.probe import Probe


@dataclass(frozen=True)
class RollbackEvidence:
    """What a rollback did and what proved it; times are epoch seconds on the probe's clock."""

    reason: str
    decided_at: float
    weights_set_at: float
    proven_at: float | None
    weights_read_back: tuple[int, int]
    consecutive_required: int
    requests_after: int        # answers to requests sent after the weights changed, up to the proof
    y_hits_after: int          # of those, answered by Y
    failed_after: int          # of those, failed (HTTP) or with no answer
    window: ProbeWindow = field(repr=False)   # every record completed from the decision to the proof

    @property
    def proven(self) -> bool:
        return self.proven_at is not None

    @property
    def seconds_to_weights(self) -> float:
        return self.weights_set_at - self.decided_at

    @property
    def seconds_to_proof(self) -> float | None:
        return None if self.proven_at is None else self.proven_at - self.decided_at

    def to_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason, "decided_at": self.decided_at, "weights_set_at": self.weights_set_at,
            "proven_at": self.proven_at, "seconds_to_weights": self.seconds_to_weights,
            "seconds_to_proof": self.seconds_to_proof, "weights_read_back": self.weights_read_back,
            "consecutive_required": self.consecutive_required, "requests_after": self.requests_after,
            "y_hits_after": self.y_hits_after, "failed_after": self.failed_after,
        }


class RollbackNotProven(TrafficError):
    """The probe did not show X alone answering in time; ``evidence`` holds what it saw."""

    def __init__(self, message: str, evidence: RollbackEvidence, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.evidence = evidence


def rollback(
    splitter: Splitter,
    probe: Probe,
    *,
    timeout: float = 5.0,
    consecutive: int = 50,
    reason: str = "",
    decided_at: float | None = None,
) -> RollbackEvidence:
    """Put all weight on X and wait (at most ``timeout`` s) for ``consecutive`` clean X answers.

    Uses the probe as it runs (a background probe across the shift), or runs it for the proof and
    stops it again. Raises :class:`RollbackNotProven` (a TrafficError) when the proof does not come.
    """
    if probe.pin_y:
        raise ProbeError("a rollback cannot be proven with a probe pinned to Y; pass an unpinned probe")
    if consecutive < 1:
        raise ProbeError(f"consecutive must be at least 1, got {consecutive}")
    decided = probe.now() if decided_at is None else decided_at
    started_here = not probe.running
    cursor = probe.completed
    if started_here:
        probe.start(count=int(probe.rate * (timeout + 2)) + consecutive, duration=timeout + 2)
    collected: list[ProbeRecord] = []
    try:
        splitter.set_weights(100, 0)
        weights_set = probe.now()
        read_back = splitter.weights()
        streak = seen = y_hits = failed = 0
        proven_at: float | None = None
        deadline = time.monotonic() + timeout
        while proven_at is None and time.monotonic() < deadline:
            records, cursor = probe.records_after(cursor)
            for r in records:
                collected.append(r)
                if r.sent < weights_set or proven_at is not None:
                    continue
                seen += 1
                y_hits += r.side == "y"
                bad = r.failed or r.probe_error
                failed += bad
                streak = streak + 1 if (r.side == "x" and r.ok) else 0
                if streak >= consecutive:
                    proven_at = r.done
            if proven_at is None:
                time.sleep(0.005)
    finally:
        if started_here:
            probe.stop()
    evidence = RollbackEvidence(
        reason=reason, decided_at=decided, weights_set_at=weights_set, proven_at=proven_at,
        weights_read_back=read_back, consecutive_required=consecutive, requests_after=seen,
        y_hits_after=y_hits, failed_after=failed,
        window=ProbeWindow.of(collected, label="rollback", weights=(100, 0)),
    )
    if proven_at is None:
        raise RollbackNotProven(
            f"rollback not proven within {timeout:g}s: after all weight went to X (read back "
            f"{read_back}), {seen} answers came, {y_hits} from Y, {failed} failed; needed {consecutive} "
            "clean X answers in a row",
            evidence,
            hint="check that X is healthy and the splitter really moved the traffic; Y may still be serving",
        )
    return evidence
