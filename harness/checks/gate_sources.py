"""The shift's gate sources: each source's step record, its fixed checks, the share of Y it saw, which
source gives the latency, and opening the sources and the user-like traffic (see harness.checks.shift)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.gates import GateCheck, GateConfig
from harness.model import Node
from harness.plan import Plan
from harness.run.traffic import TrafficRun
from harness.sequential import TestName, step_tests
from harness.sources import LATENCY_ORDER, Reading, SideCounts, Source, Unavailable
from harness.stats import quantile_lower_bound, rate_bound
from harness.traffic.usertraffic import UserTraffic


@dataclass(frozen=True)
class SourceStep:
    """What one source saw over a step and what its gate said (``verdict`` None: not judging)."""

    name: str
    available: bool
    why: str
    reading: Reading
    verdict: str | None = None
    latency: bool = False          # this source gave the step's latency

    def figures(self) -> dict[str, object]:
        x, y = self.reading.side("x"), self.reading.side("y")

        def side(c: SideCounts) -> dict[str, object]:
            return {"answers": c.answers, "failed": c.failed, "error_rate": c.error_rate, "p50_ms": c.p(50),
                    "p99_ms": c.p(99)}

        return {"source": self.name, "available": self.available, "why": self.why, "verdict": self.verdict,
                "latency_source": self.latency, "latency_kind": self.reading.latency, "share_y": self.reading.share_y,
                "x": side(x), "y": side(y), "notes": list(self.reading.notes),
                "nodes": {n: {"side": c.side, "answers": c.answers, "failed": c.failed, "classes": dict(c.classes)}
                          for n, c in sorted(self.reading.nodes.items())}}

    def line(self) -> str:
        if not self.available:
            return f"{self.name}: unavailable ({self.why})"
        x, y = self.reading.side("x"), self.reading.side("y")

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        share = "-" if self.reading.share_y is None else f"{100 * self.reading.share_y:.1f} %"
        p99 = f", p99 X {ms(x.p(99))} / Y {ms(y.p(99))} ms" if self.reading.latency != "none" else ""
        return (f"{self.name}: X {x.answers} / Y {y.answers} answers (share Y {share}), 5xx X {x.failed} / "
                f"Y {y.failed}{p99}")


def latency_source(judging: Sequence[tuple[str, str]]) -> str:
    """The first of LATENCY_ORDER among ``(name, latency kind)`` of the judging sources that has latencies."""
    kinds = dict(judging)
    for name in LATENCY_ORDER:
        if name in kinds and kinds[name] != "none":
            return name
    return "probe"


def source_tests(weight_y: int, *, latency: bool) -> tuple[TestName, ...]:
    """A source's sequential tests at a step: the latency test only for the step's latency source."""
    tests = step_tests(weight_y)
    return tests if latency else tuple(t for t in tests if t != "latency")


def share_check(weight_y: int, reading: Reading) -> tuple[GateCheck, str | None]:
    """Achieved share of Y against the asked weight, as a passing check; and a warning when they part by
    more than chance (3 standard deviations of a binomial share, at least 2 points)."""
    asked = weight_y / 100
    n = reading.answers
    name = f"share_y[{reading.source}]"
    if not n:
        return GateCheck(name, None, asked, True, f"{reading.source}: no answers to measure the share of Y"), None
    achieved = reading.share_y or 0.0
    tolerance = max(0.02, 3 * math.sqrt(max(asked * (1 - asked), 1e-4) / n))
    parted = abs(achieved - asked) > tolerance
    text = (f"{reading.source}: Y answered {100 * achieved:.1f} % of {n} requests, asked {weight_y} %"
            + (f": they part by more than chance (+-{100 * tolerance:.1f} points); kept-alive client connections "
               "pinned to one side, or a node not taking its share" if parted else ""))
    return GateCheck(name, round(achieved, 4), asked, True, text, "pass"), (text if parted else None)


def source_checks(reading: Reading, config: GateConfig, *, latency: bool) -> list[GateCheck]:
    """A non-probe source's fixed checks at the end of a step: Y's error rate (and p99, for the latency
    source) over their limits only beyond reasonable doubt (one-sided bounds at 1 - alpha)."""
    y = reading.side("y")
    if not y.answers:
        return []
    name = reading.source
    confidence = 1 - config.alpha
    bound = rate_bound(y.failed, y.answers, confidence)
    over = bound.over(config.max_error_rate)
    checks = [GateCheck(
        f"error_rate_y[{name}]", bound.rate, config.max_error_rate, not over,
        f"{name}: Y {y.failed} of {y.answers} answers 5xx ({100 * bound.rate:.2f} %, {100 * confidence:g} % lower "
        f"bound {100 * bound.lower:.2f} %, limit {100 * config.max_error_rate:.2f} %)"
        + (": over the limit beyond reasonable doubt" if over else ""), "fail" if over else "pass", bound=bound.lower)]
    if latency and y.low_ms:
        p99 = quantile_lower_bound(y.low_ms, 99, confidence)
        shown = y.p(99)
        over = p99.over(config.max_p99_ms)
        checks.append(GateCheck(
            f"p99_y[{name}]", shown, config.max_p99_ms, not over,
            f"{name}: Y p99 {shown:.1f} ms ({100 * confidence:g} % lower bound {p99.lower or 0:.1f} ms, limit "
            f"{config.max_p99_ms:g} ms)" + (": over the limit beyond reasonable doubt" if over else ""),
            "fail" if over else "pass", bound=p99.lower))
    return checks


# ---- opening the sources and the user-like traffic (the shift fixture calls these) ----------------------


def open_sources(plan: Plan, traffic: TrafficRun, nodes: Sequence[Node], configs: Mapping[str, object], *,
                 token: str | None = None) -> list[Source]:
    """The non-probe sources ``gates.sources`` asks for, each able to say why it is unavailable.
    ``configs``: X's backup config and Y's (a config or its plugin list), from which Prometheus's
    availability is decided (never from a 404)."""
    from harness.sources.balancer import balancer_source
    from harness.sources.prometheus import PrometheusSource, targets_of

    out: list[Source] = []
    for name in plan.gates.sources:
        if name == "balancer":
            try:
                out.append(balancer_source(traffic.splitter))
            except Exception as exc:
                out.append(Unavailable("balancer", f"its request log could not be opened: {exc}"))
        elif name == "prometheus":
            served = {b.name for b in getattr(traffic.splitter, "backends", ())}
            targets = targets_of(n for n in nodes if not served or n.name in served)
            out.append(PrometheusSource(targets, {"x": configs.get("x"), "y": configs.get("y")}, token=token))
    return out


def start_user_traffic(plan: Plan, traffic: TrafficRun, log: Callable[[str], None]) -> UserTraffic | None:
    """wrk through the splitter with the probe's mix (drawn from the corpus) at ``probe.user_rate``; None at 0."""
    if plan.probe.user_rate <= 0:
        return None
    user = UserTraffic(traffic.splitter.listen_url, traffic.probe.mix, rate=plan.probe.user_rate,
                       timeout_seconds=plan.probe.timeout_seconds)
    user.start()
    log(f"user-like traffic: {user.describe()}; the balancer and prometheus sources see it, the probe does not")
    return user
