"""Kong's Prometheus plugin as a metrics source: ``/metrics`` on each node, read as deltas per look.

Facts (KONG-FACTS.md 9.3; Kong/kong ``kong/plugins/prometheus/exporter.lua`` and ``schema.lua`` at 2.8.5
and 3.0.0 ... 3.9.3):

* 2.8: requests per status in ``kong_http_status{service,route,code}`` (a counter; prometheus_client's
  parser names its samples ``kong_http_status_total``), latency in the one histogram
  ``kong_latency{service,route,type}`` with ``type`` request | upstream | kong. Every metric is on while
  the plugin runs.
* 3.x: ``kong_http_requests_total{service,route,code,source,[workspace],consumer}`` and one histogram per
  kind, ``kong_request_latency_ms``, ``kong_upstream_latency_ms``, ``kong_kong_latency_ms``. Each is
  written only when the plugin's ``status_code_metrics`` / ``latency_metrics`` flag is on; both default
  to false (``schema.lua``).
* A histogram bucket is written only once something fell in it (a missing bucket holds what the nearest
  written bucket below it holds, 0 below the lowest); counters
  live in the node and survive a new config, but restart from 0 with the node (a smaller value than
  the last read is read as a restart: the new value is the delta).

Latency here is the time Kong itself adds (``kong_kong_latency_ms``; 2.8 ``type="kong"``): the upstream
is the same for X and Y, and these buckets are finer at small values (1, 2, 5, 7, 10, 15, 20, 30, 50 ...)
than the request histogram's (25, 50, 80 ...). Each answer enters the latency test as its bucket's
bounds (harness.sources.base).

**Available only where both clusters' own configs enable it.** X is never written, so the plugin (and,
on 3.x, its flags) must already be in X's configuration (its backup) and in Y's; otherwise the source
says which side lacks what and the gates use the others. A request Kong never saw (the balancer's own
503 for a node that is down) is not in these counts: the balancer and the probe see those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.model import Node, Side
from harness.sources.base import NodeCounts, Reading, status_class

Fetch = Callable[[str], str]


@dataclass(frozen=True)
class Coverage:
    """What one cluster's config lets the plugin report."""

    counts: bool
    latency: bool
    why: str            # what is missing, or what is read


def _prometheus_plugins(config: object) -> list[tuple[dict[str, object], bool]]:
    """Every prometheus plugin in a declarative config (top-level or nested), with whether it is global."""
    found: list[tuple[dict[str, object], bool]] = []

    def walk(value: object, top: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "plugins" and isinstance(item, list):
                    for plugin in item:
                        if isinstance(plugin, dict) and plugin.get("name") == "prometheus":
                            scoped = any(plugin.get(k) for k in ("service", "route", "consumer"))
                            found.append((plugin, top and not scoped))
                        walk(plugin, False)
                else:
                    walk(item, False)
        elif isinstance(value, list):
            for item in value:
                walk(item, False)

    if isinstance(config, list):         # an Admin API listing of plugins
        walk({"plugins": config}, True)
    else:
        walk(config, True)
    return found


def coverage(version: str, config: object) -> Coverage:
    """Whether a cluster at ``version`` with this config (a declarative config or a list of plugins)
    reports status codes and latencies through the prometheus plugin."""
    if config is None:
        return Coverage(False, False, "its configuration could not be read")
    plugins = [(p, g) for p, g in _prometheus_plugins(config) if p.get("enabled", True) is not False]
    if not plugins:
        return Coverage(False, False, "no enabled prometheus plugin in its configuration")
    scope = "global" if any(g for _, g in plugins) else "scoped to some services/routes only: other requests are " \
        "not counted"
    major = int(str(version).split(".")[0] or 0) if str(version)[:1].isdigit() else 3
    if major < 3:
        return Coverage(True, True, f"prometheus plugin ({scope}; 2.8 reports statuses and latencies)")
    conf = [c for p, _ in plugins if isinstance(c := p.get("config"), dict)]   # None or {}: nothing switched on
    counts = any(c.get("status_code_metrics") for c in conf)
    latency = any(c.get("latency_metrics") for c in conf)
    if not counts:
        return Coverage(False, latency, "its prometheus plugin has status_code_metrics off (the 3.x default), so "
                        "kong_http_requests_total is not written")
    return Coverage(True, latency, f"prometheus plugin ({scope}; status_code_metrics on, latency_metrics "
                    f"{'on' if latency else 'off: no latency from this source'})")


@dataclass(frozen=True)
class Scrape:
    """One node's cumulative counters: answers per status code, and Kong-latency buckets (le -> count)."""

    codes: Mapping[int, float] = field(default_factory=dict)
    buckets: Mapping[float, float] = field(default_factory=dict)


def _filled(buckets: Mapping[float, float], bounds: Iterable[float]) -> dict[float, float]:
    """Cumulative counts at every bound: a bound not written holds the count of the nearest written bound
    below it (0 below the lowest: nothing fell there yet)."""
    out: dict[float, float] = {}
    known = sorted(buckets)
    for bound in sorted(set(bounds) | set(known)):
        below = [b for b in known if b <= bound]
        out[bound] = buckets[below[-1]] if below else 0.0
    return out


def parse_metrics(text: str) -> Scrape:
    """Status counts and the Kong-latency histogram of one ``/metrics`` text, summed over services,
    routes, consumers and workspaces; either naming (2.8 or 3.x)."""
    codes: dict[int, float] = {}
    per_series: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name in ("kong_http_status", "kong_http_status_total", "kong_http_requests_total"):
                try:
                    code = int(labels.get("code", ""))
                except ValueError:
                    continue
                codes[code] = codes.get(code, 0.0) + sample.value
            elif (name == "kong_kong_latency_ms_bucket"
                  or (name == "kong_latency_bucket" and labels.get("type") == "kong")):
                series = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                per_series.setdefault(series, {})[float(labels.get("le", "inf"))] = sample.value
    bounds = {b for buckets in per_series.values() for b in buckets}
    total: dict[float, float] = {}
    for buckets in per_series.values():
        for bound, count in _filled(buckets, bounds).items():
            total[bound] = total.get(bound, 0.0) + count
    return Scrape(codes, total)


def delta(now: Scrape, before: Scrape | None) -> tuple[Scrape, bool]:
    """``now - before`` per code and bucket; (now, True) when a counter went down (the node restarted)."""
    if before is None:
        return now, False
    codes = {k: v - before.codes.get(k, 0.0) for k, v in now.codes.items()}
    bounds = set(now.buckets) | set(before.buckets)
    then, current = _filled(before.buckets, bounds), _filled(now.buckets, bounds)
    buckets = {k: current[k] - then[k] for k in bounds}
    went_down = any(v < 0 for v in codes.values()) or any(v < 0 for v in buckets.values()) or any(
        k not in now.codes for k in before.codes)
    if went_down:
        return now, True
    return Scrape(codes, buckets), False


def bucket_bounds(buckets: Mapping[float, float]) -> list[tuple[float, float, int]]:
    """Cumulative buckets -> (lower, upper, count) per bucket that holds anything. A bucket not written
    counts 0; the lowest written bucket's lower bound is taken as 0 (the conservative side)."""
    out = []
    previous_bound, previous_count = 0.0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        n = round(count - previous_count)
        if n > 0:
            out.append((previous_bound, bound, n))
        previous_bound, previous_count = bound, max(previous_count, count)
    return out


def counts_of(node: str, side: Side, scrape: Scrape, *, latency: bool) -> NodeCounts:
    answers = round(sum(scrape.codes.values()))
    failed = round(sum(v for k, v in scrape.codes.items() if k >= 500))
    classes: dict[str, int] = {}
    for code, value in scrape.codes.items():
        if value:
            classes[status_class(code)] = classes.get(status_class(code), 0) + round(value)
    low: list[float] = []
    high: list[float] = []
    if latency:
        for lower, upper, n in bucket_bounds(scrape.buckets):
            low += [lower] * n
            high += [upper] * n
    # the figure shown is the bucket's upper bound ("at most")
    return NodeCounts(node, side, answers, failed, classes, tuple(high), tuple(low), tuple(high))


@dataclass(frozen=True)
class Target:
    node: str
    side: Side
    version: str
    url: str | None          # the Status API, else the Admin API; None: neither


def targets_of(nodes: Iterable[Node]) -> list[Target]:
    return [Target(n.name, n.cluster, n.version or "", n.status_url or n.admin_url) for n in nodes]


class PrometheusSource:
    """Scrapes ``/metrics`` of every node in the split on each read (one keep-alive client, ``timeout`` per
    scrape: a node that hangs delays a look by at most that, and is named in the reading's notes)."""

    name = "prometheus"

    def __init__(self, targets: Sequence[Target], configs: Mapping[Side, object], *, token: str | None = None,
                 timeout: float = 1.0, fetch: Fetch | None = None) -> None:
        self.targets = tuple(targets)
        self._coverage = {t.side: coverage(t.version, configs.get(t.side)) for t in self.targets}
        self._last: dict[str, Scrape] = {}
        self._client: httpx.Client | None = None
        if fetch is None:
            headers = {"Kong-Admin-Token": token} if token else {}
            self._client = httpx.Client(timeout=timeout, trust_env=False, headers=headers)
            client = self._client

            def fetch(url: str) -> str:
                response = client.get(url.rstrip("/") + "/metrics")
                response.raise_for_status()
                return response.text

        self._fetch: Fetch = fetch
        self._problems: dict[str, str] = {}

    @property
    def latency(self) -> bool:
        return all(c.latency for c in self._coverage.values())

    def available(self) -> tuple[bool, str]:
        missing = [f"{side.upper()}: {c.why}" for side, c in sorted(self._coverage.items()) if not c.counts]
        if missing:
            return False, ("Kong's prometheus metrics cannot be read on every node (" + "; ".join(missing)
                           + "); X is never written, so this source is unavailable and the gates use the others")
        no_url = [t.node for t in self.targets if t.url is None]
        if no_url:
            return False, f"{', '.join(no_url)} has neither a Status API nor an Admin API to read /metrics from"
        x, y = self._coverage.get("x"), self._coverage.get("y")
        return True, f"/metrics on each node: X {x.why if x else '-'}; Y {y.why if y else '-'}"

    def _scrape(self, target: Target) -> Scrape | None:
        if target.url is None:
            return None
        try:
            scrape = parse_metrics(self._fetch(target.url))
        except Exception as exc:     # a node that does not answer: the balancer and the probe see it
            self._problems[target.node] = f"{target.node}: /metrics not read ({str(exc).splitlines()[0][:120]})"
            return None
        self._problems.pop(target.node, None)
        return scrape

    def read(self) -> Reading:
        counts = []
        notes: list[str] = []
        latency = self.latency
        for target in self.targets:
            now = self._scrape(target)
            if now is None:
                continue
            change, restarted = delta(now, self._last.get(target.node))
            first = target.node not in self._last
            self._last[target.node] = now
            if first:
                continue            # the first read sets the baseline
            if restarted:
                notes.append(f"{target.node}: its counters went down (node restarted?); counted from 0")
            counts.append(counts_of(target.node, target.side, change, latency=latency))
        notes += sorted(self._problems.values())
        return Reading.of(self.name, counts, "histogram" if latency else "none", notes)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


__all__ = ["Coverage", "PrometheusSource", "Scrape", "Target", "bucket_bounds", "counts_of", "coverage", "delta",
           "parse_metrics", "targets_of"]
