"""Kong's Prometheus plugin: the counters a node keeps for the requests it proxies, and `/metrics`.

Names, labels, buckets and defaults are Kong's (KONG-FACTS.md 9.3), read from
`kong/plugins/prometheus/exporter.lua`, `handler.lua`, `schema.lua` and `prometheus.lua` of Kong/kong:

- 2.8 (@ 2.8.5): `kong_http_status{service,route,code}`, `kong_latency{service,route,type}` (one histogram,
  type = request | upstream | kong, buckets 1 ... 60000), `kong_bandwidth{service,route,type}` (ingress |
  egress), `kong_http_consumer_status{service,route,code,consumer}` with `per_consumer`; every per-request
  metric is on whenever the plugin runs. Node gauges: `kong_nginx_http_current_connections{state}`,
  `kong_nginx_timers{state}`, `kong_datastore_reachable`, `kong_memory_*`, `kong_upstream_target_health`.
- 3.x (@ 3.0.0 ... 3.9.3): `kong_http_requests_total{service,route,code,source,consumer}`,
  `kong_kong_latency_ms`, `kong_upstream_latency_ms`, `kong_request_latency_ms` (histograms with
  {service,route}), `kong_bandwidth_bytes{service,route,direction,consumer}`, each only when the plugin's
  `status_code_metrics` / `latency_metrics` / `bandwidth_metrics` flag is on (all default false), and
  `kong_upstream_target_health` only with `upstream_health_metrics`. A `workspace` label is added from
  3.7.0 (before `consumer`); `kong_kong_latency_ms` gains buckets 3000 and 6000 from 3.8.1. Node gauges:
  `kong_nginx_connections_total{node_id,subsystem,state}`, `kong_nginx_requests_total`, `kong_node_info`,
  `kong_nginx_timers`, `kong_datastore_reachable`, `kong_memory_*` (with node_id).
- From 3.2.0, while no enabled prometheus plugin is configured, `/metrics` shows only the node gauges
  (`prometheus:metric_data(write_fn, not is_prometheus_enabled())`); 2.8, 3.0 and 3.1 show everything.
- Which requests count: 2.8 to 3.5 skip a request without a service; from 3.6 a request without a route
  (service label "" then). Labels: service = name or host, route = name or id, source = "service" when the
  upstream answered, else "kong".
- Output as Kong's nginx-lua-prometheus: keys sorted as strings with zero-padded `le` (so buckets come in
  order), `# HELP`/`# TYPE` before the first series of a metric, a histogram bucket only once something
  fell in it, numbers as Lua prints them (%.14g). Counters persist across config changes (they live in the
  node, not in the loaded config).
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulator.versions import KongVersion

if TYPE_CHECKING:
    from emulator.node import NodeState

BUCKETS_28 = (1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 1000,
              2000, 5000, 10000, 30000, 60000)
KONG_LATENCY_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000)
KONG_LATENCY_BUCKETS_381 = (*KONG_LATENCY_BUCKETS, 3000, 6000)
UPSTREAM_LATENCY_BUCKETS = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000)
FLAGS_3X = ("per_consumer", "status_code_metrics", "latency_metrics", "bandwidth_metrics",
            "upstream_health_metrics")
# our own one-line descriptions (Kong's HELP wording is not copied; names and types are Kong's)
HELP = {
    "http_status": ("counter", "HTTP status codes per service and route"),
    "http_consumer_status": ("counter", "HTTP status codes per service, route and consumer"),
    "latency": ("histogram", "Latencies per service and route: request, upstream, kong (ms)"),
    "bandwidth": ("counter", "Bytes per service and route, ingress and egress"),
    "nginx_http_current_connections": ("gauge", "HTTP connections by state"),
    "http_requests_total": ("counter", "HTTP requests per service, route, status code, source and consumer"),
    "kong_latency_ms": ("histogram", "Latency Kong and its plugins added (ms)"),
    "upstream_latency_ms": ("histogram", "Latency of the upstream's answer (ms)"),
    "request_latency_ms": ("histogram", "Total request latency (ms)"),
    "bandwidth_bytes": ("counter", "Bytes per service and route, ingress and egress"),
    "nginx_connections_total": ("gauge", "Connections by subsystem and state"),
    "nginx_requests_total": ("gauge", "Requests handled by the node"),
    "node_info": ("gauge", "Node id and version"),
    "nginx_timers": ("gauge", "Timers by state"),
    "datastore_reachable": ("gauge", "1 when the datastore is reachable"),
    "nginx_metric_errors_total": ("counter", "Errors of the metrics library"),
    "memory_workers_lua_vms_bytes": ("gauge", "Bytes allocated in each worker's Lua VM"),
    "memory_lua_shared_dict_bytes": ("gauge", "Bytes allocated in each shared dict"),
    "memory_lua_shared_dict_total_bytes": ("gauge", "Capacity of each shared dict in bytes"),
    "upstream_target_health": ("gauge", "Target health by state, 1 for the current state"),
    "data_plane_last_seen": ("gauge", "When each data plane last contacted this control plane"),
    "data_plane_config_hash": ("gauge", "Each data plane's config hash as a number"),
    "data_plane_version_compatible": ("gauge", "1 when the data plane's version is compatible"),
    "data_plane_cluster_cert_expiry_timestamp": ("gauge", "Expiry of this data plane's cluster certificate"),
}
INCOMPATIBLE = ("kong_version_incompatible", "plugin_set_incompatible", "plugin_version_incompatible")
SHARED_DICTS = {"kong": (40960, 5 * 1024**2), "kong_db_cache": (790528, 128 * 1024**2)}


@dataclass(frozen=True)
class Observed:
    """One request the proxy answered, as Kong's `kong.log.serialize()` would describe it."""

    route: dict[str, Any] | None
    service: dict[str, Any] | None
    status: int
    source: str                  # "service" when the upstream answered, else "kong"
    consumer: str | None         # the authenticated consumer's username
    request_ms: int
    upstream_ms: int | None      # None when nothing was proxied (Kong's -1)
    kong_ms: int
    request_bytes: int
    response_bytes: int


def lua_number(value: float) -> str:
    """How LuaJIT's tostring prints a number (%.14g): 3 -> "3", 0.5 -> "0.5", 1e15 -> "1e+15"."""
    return format(float(value), ".14g")


def _escape(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    # Kong escapes backslash and quote; a newline is escaped too here so the output stays parseable
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: Iterable[Any]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def _bucket_format(buckets: tuple[int, ...]) -> str:
    """nginx-lua-prometheus construct_bucket_format: zero-padded so buckets sort as strings."""
    order = max(1, *(len(str(int(b))) for b in buckets))
    return f"{{:0{order + 2}.1f}}"


class _Histogram:
    def __init__(self, name: str, label_names: tuple[str, ...], buckets: tuple[int, ...]) -> None:
        self.name = name
        self.label_names = label_names
        self.buckets = buckets
        fmt = _bucket_format(buckets)
        self.le = [fmt.format(b) for b in buckets]
        self._keys: dict[tuple[Any, ...], tuple[str, str, list[str], str]] = {}

    def keys(self, values: tuple[Any, ...]) -> tuple[str, str, list[str], str]:
        found = self._keys.get(values)
        if found is None:
            labels = _labels(self.label_names, values)
            prefix = f"{self.name}_bucket{{{labels}," if labels else f"{self.name}_bucket{{"
            suffix = f"{{{labels}}}" if labels else ""
            found = (f"{self.name}_count{suffix}", f"{self.name}_sum{suffix}",
                     [f'{prefix}le="{le}"}}' for le in self.le], f'{prefix}le="Inf"}}')
            self._keys[values] = found
        return found


class Metrics:
    """The node's prometheus shared dict and exporter."""

    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.version: KongVersion = state.version
        self.store: dict[str, float] = {"nginx_metric_errors_total": 0}
        self.requests = 0
        self._cert_expiry: float | bool | None = False
        v = self.version
        self.legacy = v.major < 3
        workspace = ("workspace",) if v.at_least(3, 7) else ()
        self.workspace = workspace
        if self.legacy:
            self.latency = _Histogram("latency", ("service", "route", "type"), BUCKETS_28)
        else:
            kong_buckets = KONG_LATENCY_BUCKETS_381 if (v.major, v.minor, v.patch) >= (3, 8, 1) \
                else KONG_LATENCY_BUCKETS
            names = ("service", "route", *workspace)
            self.kong_latency = _Histogram("kong_latency_ms", names, kong_buckets)
            self.upstream_latency = _Histogram("upstream_latency_ms", names, UPSTREAM_LATENCY_BUCKETS)
            self.request_latency = _Histogram("request_latency_ms", names, UPSTREAM_LATENCY_BUCKETS)

    # ---- the log phase ----
    def _inc(self, key: str, amount: float = 1) -> None:
        self.store[key] = self.store.get(key, 0) + amount

    def _observe(self, histogram: _Histogram, values: tuple[Any, ...], value: float) -> None:
        count, total, buckets, inf = histogram.keys(values)
        store = self.store
        store[count] = store.get(count, 0) + 1
        store[total] = store.get(total, 0) + value
        for bound, key in zip(histogram.buckets, buckets, strict=True):
            if value <= bound:
                store[key] = store.get(key, 0) + 1
        store[inf] = store.get(inf, 0) + 1

    def observe(self, plugin: dict[str, Any] | None, seen: Observed) -> None:
        """The plugin's log phase for one request (`plugin` is the instance that ran, or None)."""
        self.requests += 1
        if plugin is None:
            return
        conf = plugin.get("config") or {}
        route_name = (seen.route.get("name") or seen.route.get("id")) if seen.route else None
        if self.version.at_least(3, 6):
            if seen.route is None:
                return
            service_name = (seen.service.get("name") or seen.service.get("host") or "") if seen.service else ""
        else:
            if seen.service is None:
                return
            service_name = seen.service.get("name") or seen.service.get("host")
        if self.legacy:
            self._observe_28(conf, seen, service_name, route_name)
        else:
            self._observe_3x(conf, seen, service_name, route_name)

    def _observe_28(self, conf: dict[str, Any], seen: Observed, service: Any, route: Any) -> None:
        base = _labels(("service", "route"), (service, route))
        self._inc(f'http_status{{{base},code="{seen.status}"}}')
        if seen.request_bytes > 0:
            self._inc(f'bandwidth{{{base},type="ingress"}}', seen.request_bytes)
        if seen.response_bytes > 0:
            self._inc(f'bandwidth{{{base},type="egress"}}', seen.response_bytes)
        self._observe(self.latency, (service, route, "request"), seen.request_ms)
        if seen.upstream_ms is not None:
            self._observe(self.latency, (service, route, "upstream"), seen.upstream_ms)
        self._observe(self.latency, (service, route, "kong"), seen.kong_ms)
        if conf.get("per_consumer") and seen.consumer is not None:
            consumer = _labels(("consumer",), (seen.consumer,))
            self._inc(f'http_consumer_status{{{base},code="{seen.status}",{consumer}}}')

    def _observe_3x(self, conf: dict[str, Any], seen: Observed, service: Any, route: Any) -> None:
        consumer = seen.consumer if conf.get("per_consumer") and seen.consumer is not None else ""
        ws = ("default",) if self.workspace else ()
        if conf.get("bandwidth_metrics"):
            names = ("service", "route", "direction", *self.workspace, "consumer")
            if seen.request_bytes > 0:
                key = _labels(names, (service, route, "ingress", *ws, consumer))
                self._inc(f"bandwidth_bytes{{{key}}}", seen.request_bytes)
            if seen.response_bytes > 0:
                key = _labels(names, (service, route, "egress", *ws, consumer))
                self._inc(f"bandwidth_bytes{{{key}}}", seen.response_bytes)
        if conf.get("status_code_metrics"):
            names = ("service", "route", "code", "source", *self.workspace, "consumer")
            key = _labels(names, (service, route, seen.status, seen.source, *ws, consumer))
            self._inc(f"http_requests_total{{{key}}}")
        if conf.get("latency_metrics"):
            values = (service, route, *ws)
            self._observe(self.request_latency, values, seen.request_ms)
            if seen.upstream_ms is not None:
                self._observe(self.upstream_latency, values, seen.upstream_ms)
            self._observe(self.kong_latency, values, seen.kong_ms)

    # ---- the scrape ----
    def enabled(self) -> bool:
        """Is an enabled prometheus plugin configured anywhere (the 3.2+ `local_only` switch)?"""
        return any(p.get("name") == "prometheus" and p.get("enabled", True)
                   for p in (self.state.entities.get("plugins") or {}).values())

    def _upstream_health_on(self) -> bool:
        if self.legacy:
            return True
        return any(p.get("name") == "prometheus" and p.get("enabled", True)
                   and (p.get("config") or {}).get("upstream_health_metrics")
                   for p in (self.state.entities.get("plugins") or {}).values())

    def node_gauges(self) -> dict[str, float]:
        settings = self.state.settings
        node_id, pid = settings.node_id, os.getpid()
        out: dict[str, float] = {"datastore_reachable": 1}
        total = self.requests + 1  # this scrape is a request too
        connections = {"accepted": total, "handled": total, "total": total, "active": 1, "reading": 0,
                       "writing": 1, "waiting": 0}
        if self.legacy:
            for name, (used, capacity) in SHARED_DICTS.items():
                out[f'memory_lua_shared_dict_bytes{{shared_dict="{name}",kong_subsystem="http"}}'] = used
                out[f'memory_lua_shared_dict_total_bytes{{shared_dict="{name}",kong_subsystem="http"}}'] = capacity
            out[f'memory_workers_lua_vms_bytes{{pid="{pid}",kong_subsystem="http"}}'] = 3_000_000
            for name, value in connections.items():
                out[f'nginx_http_current_connections{{state="{name}"}}'] = value
        else:
            node = _escape(node_id)
            for name, (used, capacity) in SHARED_DICTS.items():
                labels = f'node_id="{node}",shared_dict="{name}",kong_subsystem="http"'
                out[f"memory_lua_shared_dict_bytes{{{labels}}}"] = used
                out[f"memory_lua_shared_dict_total_bytes{{{labels}}}"] = capacity
            out[f'memory_workers_lua_vms_bytes{{node_id="{node}",pid="{pid}",kong_subsystem="http"}}'] = 3_000_000
            for name, value in connections.items():
                out[f'nginx_connections_total{{node_id="{node}",subsystem="http",state="{name}"}}'] = value
            out[f'nginx_requests_total{{node_id="{node}",subsystem="http"}}'] = total
            out[f'node_info{{node_id="{node}",version="{_escape(str(self.version))}"}}'] = 1
        out['nginx_timers{state="running"}'] = 0
        out['nginx_timers{state="pending"}'] = 4
        if settings.role != "control_plane" and self._upstream_health_on():
            out.update(self._upstream_health())
        if settings.role == "control_plane":
            out.update(self._data_planes())
        elif settings.role == "data_plane":
            expiry = self._expiry()
            if expiry is not None:
                out["data_plane_cluster_cert_expiry_timestamp"] = expiry
        return out

    def _upstream_health(self) -> dict[str, float]:
        """Targets are never health-checked here: each reports `healthchecks_off` (README)."""
        entities = self.state.entities
        out: dict[str, float] = {}
        upstreams = entities.get("upstreams") or {}
        for target in (entities.get("targets") or {}).values():
            upstream = upstreams.get((target.get("upstream") or {}).get("id", ""))
            if upstream is None:
                continue
            for state in ("healthchecks_off", "healthy", "unhealthy", "dns_error"):
                labels = _labels(("upstream", "target", "address", "state", "subsystem"),
                                 (upstream.get("name"), target.get("target"), target.get("target"), state, "http"))
                out[f"upstream_target_health{{{labels}}}"] = 1 if state == "healthchecks_off" else 0
        return out

    def _data_planes(self) -> dict[str, float]:
        registry = self.state.registry
        out: dict[str, float] = {}
        if registry is None:
            return out
        for row in registry.table.values():
            base = _labels(("node_id", "hostname", "ip"), (row.get("id"), row.get("hostname"), row.get("ip")))
            out[f"data_plane_last_seen{{{base}}}"] = row.get("last_seen") or 0
            with contextlib.suppress(ValueError):
                out[f"data_plane_config_hash{{{base}}}"] = float(int(str(row.get("config_hash")), 16))
            compatible = 0 if row.get("sync_status") in INCOMPATIBLE else 1
            version = _labels(("kong_version",), (row.get("version"),))
            out[f"data_plane_version_compatible{{{base},{version}}}"] = compatible
        return out

    def _expiry(self) -> float | None:
        if self._cert_expiry is False:
            self._cert_expiry = None
            path = self.state.settings.cluster_cert
            try:
                decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
                self._cert_expiry = float(ssl.cert_time_to_seconds(decoded["notAfter"]))
            except (AttributeError, OSError, KeyError, ValueError, TypeError):
                pass
        return self._cert_expiry if isinstance(self._cert_expiry, float) else None

    def render(self) -> str:
        """The `/metrics` text, in Kong's order and number format."""
        local = self.node_gauges()
        local_only = self.version.at_least(3, 2) and not self.enabled()
        keys: dict[str, tuple[float, bool]] = {k: (v, True) for k, v in local.items()}
        if not local_only:
            for key, value in self.store.items():
                keys.setdefault(key, (value, False))
        lines: list[str] = []
        seen: set[str] = set()
        for key in sorted(keys):
            value, _ = keys[key]
            short = _short_name(key)
            if short not in seen:
                seen.add(short)
                described = HELP.get(short)
                if described is not None:
                    lines.append(f"# HELP kong_{short} {described[1]}")
                    lines.append(f"# TYPE kong_{short} {described[0]}")
            lines.append(f"kong_{_fix_le(key)} {lua_number(value)}")
        return "\n".join(lines) + "\n"


def _short_name(key: str) -> str:
    """nginx-lua-prometheus short_metric_name: the name before `{`, without `_bucket` for buckets."""
    brace = key.find("{")
    if brace < 0:
        return key
    bucket = key.find("_bucket{")
    if bucket >= 0 and "le=" in key:
        return key[:bucket]
    return key[:brace]


def _fix_le(key: str) -> str:
    """Padded `le` back to Lua's number text; the stored "Inf" to "+Inf"."""
    if "_bucket{" not in key:
        return key
    at = key.rfind('le="')
    if at < 0 or key[at - 1] not in ",{":
        return key
    end = key.index('"', at + 4)
    bound = key[at + 4:end]
    shown = "+Inf" if bound == "Inf" else lua_number(float(bound))
    return f"{key[:at + 4]}{shown}{key[end:]}"
