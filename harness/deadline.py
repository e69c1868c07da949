"""One deadline policy: a total deadline that explains itself, and the size-scaled budget of an Admin API call.

- :class:`Deadline`: a point on the monotonic clock by which something must be done. It says how much time
  is left, whether it has passed, and builds the :class:`DeadlineExceeded` that names what timed out,
  where, after how long, and the next step. A call, a listing of many pages and (later) a whole stage
  share this type; an inner deadline never outlives its outer one (:meth:`Deadline.within`).
- :class:`CallBudget`: how long one Admin API call may take in total: a base plus a per-byte allowance
  for what is sent and what comes back, capped by a maximum (a plan setting may lower or raise it).

Why the defaults (``python -m benchmarks.admin_budget``: a DB-less emulator 3.8.1 on this 2-core machine):
the largest call the harness makes is ``POST /config`` of X's backup into Y. For the 55,000-entity config
(10,000 services, 20,000 routes, 10,000 consumers with key-auth credentials, 5,000 plugins) that backup,
exported with every default field and timestamp, is 18.7 MiB as the JSON body the harness sends (19.0 MiB
as YAML; a lean hand-written file of the same entities is ~7.4 MiB). Loading it took 3.3 s on a quiet
machine; the same load as YAML text, on the emulator before its libyaml parsing and with the machine at a
load average of 5-7, took 30.5 s and 51.4 s: 1.5-2.6 s per MiB. ``GET /config`` took 2.8-4.5 s, listing
the 10,000 services (100 pages) 0.4-0.5 s. The allowance is set from the slow end, since a real Kong
validates every entity and rebuilds its router and LMDB on load, and CI machines are shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.errors import DeadlineExceeded

MiB = 1024 * 1024

#: seconds every Admin API call gets whatever its size: connecting, Kong's routing and a small answer
#: (``GET /``, one page of 100 entities, ``/status``). It was the client's per-read timeout before the
#: total deadline existed, and no call of the project's own tests came near it.
BASE_SECONDS = 5.0

#: seconds allowed per MiB sent or expected back: 5 + 10 x 18.7 = 192 s for the 55,000-entity load, about
#: four times the slowest load measured (51.4 s for 19.9 MiB, 2.6 s per MiB) and 58 times the quiet one
#: (3.3 s). A node slower than that is reported as too slow; the plan can raise the cap.
SECONDS_PER_MIB = 10.0

#: the most any one call may take, whatever its size: the 64 MiB answer cap would otherwise earn 645 s.
#: Five minutes is 1.6 times the 55,000-entity load's 192 s; a node slower than that is reported, not
#: waited for.
MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Deadline:
    """``seconds`` after ``started`` on ``clock`` (monotonic): the time ``what`` at ``where`` may take.

    Build one with :meth:`start`; a copy with more or less time with :meth:`extended_to`, an inner one
    with :meth:`within`.
    """

    what: str
    where: str
    seconds: float
    started: float
    hint: str | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def start(cls, seconds: float, *, what: str, where: str, hint: str | None = None,
              clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        if seconds != seconds or seconds < 0:       # NaN or negative
            raise ValueError(f"a deadline needs seconds >= 0, got {seconds!r}")
        return cls(what, where, float(seconds), clock(), hint, clock)

    @property
    def at(self) -> float:
        """The clock reading at which the deadline passes."""
        return self.started + self.seconds

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def extended_to(self, seconds: float) -> Deadline:
        """The same deadline with ``seconds`` in total from the same start (more or less time)."""
        return replace(self, seconds=float(seconds))

    def within(self, seconds: float, *, what: str, where: str | None = None,
               hint: str | None = None) -> Deadline:
        """An inner deadline: ``seconds`` from now, but never after this one."""
        return Deadline.start(min(seconds, self.remaining()), what=what,
                              where=self.where if where is None else where,
                              hint=self.hint if hint is None else hint, clock=self.clock)

    def check(self, detail: str = "") -> None:
        """Raise :meth:`error` if the deadline has passed."""
        if self.expired:
            raise self.error(detail)

    def error(self, detail: str = "", *, cls: type[DeadlineExceeded] = DeadlineExceeded) -> DeadlineExceeded:
        """The error for this deadline: what, where, the limit, the time taken, ``detail`` (what was seen)."""
        elapsed = self.elapsed()
        message = f"{self.what} on {self.where} did not finish within its deadline of {self.seconds:.1f}s " \
                  f"(stopped after {elapsed:.1f}s)"
        if detail:
            message += f": {detail}"
        return cls(message, hint=self.hint, what=self.what, where=self.where, seconds=self.seconds,
                   elapsed=elapsed)


@dataclass(frozen=True)
class CallBudget:
    """The total time one Admin API call may take: ``base + per_mib x MiB``, at most ``cap`` seconds.

    ``MiB`` is what the call sends plus what it expects (or is told, by ``Content-Length``, or sees)
    coming back. A plan can set ``cap`` (e.g. for a real Kong that loads large configs slowly).
    """

    base: float = BASE_SECONDS
    per_mib: float = SECONDS_PER_MIB
    cap: float = MAX_SECONDS

    def __post_init__(self) -> None:
        for name in ("base", "per_mib", "cap"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value != value or value < 0:
                raise ValueError(f"CallBudget.{name} must be a number >= 0, got {value!r}")
        if self.cap < self.base:
            raise ValueError(f"CallBudget.cap ({self.cap:g}s) must be at least its base ({self.base:g}s)")

    def seconds(self, size_bytes: int = 0) -> float:
        """The total seconds for a call moving ``size_bytes`` (sent plus received)."""
        return min(self.cap, self.base + self.per_mib * max(0, size_bytes) / MiB)

    def describe(self) -> str:
        return f"{self.base:g}s + {self.per_mib:g}s/MiB, at most {self.cap:g}s"
