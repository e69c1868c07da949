"""The prometheus plugin's `/metrics` per version (KONG-FACTS.md 9.3; issue 12, Build 4).

Every scrape is parsed with prometheus-client's parser, which proves the text is valid exposition format;
the counts are the requests the test sent, by service, route and status code.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.emulator.conftest import Echo, wait_for

pytestmark = pytest.mark.integration


def config(echo: Echo, prometheus: dict[str, Any] | None, fmt: str = "3.0") -> str:
    plugin = ""
    if prometheus is not None:
        flags = "".join(f"\n    {k}: {str(v).lower()}" for k, v in prometheus.items())
        plugin = "plugins:\n- name: prometheus\n  config:" + (flags or " {}") + "\n"
    return f"""_format_version: "{fmt}"
services:
- name: echo
  url: {echo.url}/base
  routes:
  - name: api
    paths: ["/api"]
    plugins:
    - name: key-auth
  - name: open
    paths: ["/open"]
consumers:
- username: alice
  keyauth_credentials:
  - key: secret1
{plugin}"""


def traffic(proxy: str) -> None:
    """3 x 200 on open, 2 x 200 on api as alice, 1 x 401 on api, 1 x 404 without a route."""
    for _ in range(3):
        assert httpx.get(proxy + "/open").status_code == 200
    for _ in range(2):
        assert httpx.get(proxy + "/api", headers={"apikey": "secret1"}).status_code == 200
    assert httpx.get(proxy + "/api").status_code == 401
    assert httpx.get(proxy + "/nowhere").status_code == 404


def scrape(url: str) -> dict[str, Any]:
    """Families by name, after checking the answer and parsing it with prometheus-client."""
    answer = httpx.get(url + "/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/plain; charset=UTF-8"
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def samples(families: dict[str, Any], name: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in families.values() for s in f.samples if s.name == name]


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(families, name) if all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (name, labels, samples(families, name))
    return found[0]


def test_28_metrics_count_every_request(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """2.8.5 exporter: kong_http_status, one kong_latency histogram by type, bandwidth, per-consumer.
    Kong writes 2.8's counters without `_total`; prometheus-client's parser reports their samples as
    `<name>_total` (the text itself is checked below)."""
    node = emulators("2.8.5", config=config(echo, {"per_consumer": True}, fmt="2.1"))
    traffic(node.proxy)
    for where in (node.status, node.admin):  # status_api.lua and api.lua
        families = scrape(where)
        assert value(families, "kong_http_status_total", service="echo", route="open", code="200") == 3
        assert value(families, "kong_http_status_total", service="echo", route="api", code="200") == 2
        assert value(families, "kong_http_status_total", service="echo", route="api", code="401") == 1
        assert not [s for s in samples(families, "kong_http_status_total") if s[1].get("code") == "404"]
        assert value(families, "kong_http_consumer_status_total", route="api", code="200", consumer="alice") == 2
        assert value(families, "kong_latency_count", route="open", type="request") == 3
        assert value(families, "kong_latency_count", route="api", type="upstream") == 2  # not the 401
        assert value(families, "kong_latency_count", route="api", type="kong") == 3
        buckets = [lab["le"] for n, lab, _ in samples(families, "kong_latency_bucket")
                   if lab["route"] == "open" and lab["type"] == "request"]
        assert buckets[-1] == "+Inf" and set(buckets) <= {*map(str, (1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60,
                                                                         70, 80, 90, 100, 200, 300, 400, 500,
                                                                         1000, 2000, 5000, 10000, 30000,
                                                                         60000)), "+Inf"}
        assert value(families, "kong_bandwidth_total", route="open", type="egress") > 0
        assert value(families, "kong_bandwidth_total", route="open", type="ingress") > 0
        assert value(families, "kong_datastore_reachable") == 1
        assert value(families, "kong_nginx_http_current_connections", state="active") >= 1
        assert families["kong_latency"].type == "histogram"
        text = httpx.get(where + "/metrics").text
        assert '\nkong_http_status{service="echo",route="open",code="200"} 3\n' in text


def test_3x_flags_default_off_then_on(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """3.x: with the plugin's defaults only node metrics; with the flags, requests by source and consumer,
    three latency histograms, a workspace label from 3.7; counters survive a new config."""
    node = emulators("3.9.1", config=config(echo, {}))
    traffic(node.proxy)
    families = scrape(node.status)
    assert not samples(families, "kong_http_requests_total")
    assert not samples(families, "kong_request_latency_ms_count")
    assert value(families, "kong_node_info", version="3.9.1") == 1
    assert value(families, "kong_nginx_connections_total", state="total") >= 7
    assert samples(families, "kong_nginx_metric_errors_total")  # the plugin is configured: dict metrics shown

    flags = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True,
             "per_consumer": True}
    loaded = httpx.post(node.admin + "/config", content=config(echo, flags),
                        headers={"Content-Type": "application/yaml"})
    assert loaded.status_code == 201, loaded.text
    traffic(node.proxy)
    families = scrape(node.status)
    count = "kong_http_requests_total"
    assert value(families, count, route="open", code="200", source="service", workspace="default", consumer="") == 3
    assert value(families, count, route="api", code="200", source="service", consumer="alice") == 2
    assert value(families, count, route="api", code="401", source="kong", consumer="") == 1
    assert value(families, "kong_request_latency_ms_count", route="open", workspace="default") == 3
    assert value(families, "kong_upstream_latency_ms_count", route="api") == 2
    assert value(families, "kong_kong_latency_ms_count", route="api") == 3
    kong_buckets = {lab["le"] for _, lab, _ in samples(families, "kong_kong_latency_ms_bucket")}
    assert "1" in kong_buckets or "2" in kong_buckets  # local requests take a few ms at most
    assert value(families, "kong_bandwidth_bytes_total", route="open", direction="egress", consumer="") > 0
    first = value(families, count, route="open", code="200", source="service", consumer="")
    # a new config keeps the counters
    httpx.post(node.admin + "/config", content=config(echo, flags), headers={"Content-Type": "application/yaml"})
    httpx.get(node.proxy + "/open")
    families = scrape(node.status)
    assert value(families, count, route="open", code="200", source="service", consumer="") == first + 1


def test_3x_labels_and_buckets_by_version(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """No workspace label before 3.7; kong_kong_latency_ms has buckets up to 1000 before 3.8.1."""
    flags = {"status_code_metrics": True, "latency_metrics": True}
    node = emulators("3.4.3", config=config(echo, flags))
    traffic(node.proxy)
    families = scrape(node.admin)
    labels = samples(families, "kong_http_requests_total")[0][1]
    assert set(labels) == {"service", "route", "code", "source", "consumer"}
    assert value(families, "kong_http_requests_total", route="open", code="200", source="service") == 3
    text = httpx.get(node.admin + "/metrics").text
    assert 'le="3000"' not in text.split("kong_kong_latency_ms_bucket", 1)[1].split("# ", 1)[0]


def test_3x_without_the_plugin_shows_node_metrics_only(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """From 3.2 the exporter shows only the node's own gauges while no prometheus plugin is configured;
    3.1 still lists the library's error counter."""
    bare = emulators("3.4.3", config=config(echo, None))
    traffic(bare.proxy)
    families = scrape(bare.admin)
    assert samples(families, "kong_node_info") and not samples(families, "kong_nginx_metric_errors_total")
    older = emulators("3.1.1", config=config(echo, None))
    assert samples(scrape(older.admin), "kong_nginx_metric_errors_total")
    assert httpx.post(bare.admin + "/metrics").status_code == 405
    only_keyauth = emulators("3.9.1", config=config(echo, None), env={"KONG_PLUGINS": "key-auth"})
    assert httpx.get(only_keyauth.admin + "/metrics").status_code == 404  # plugin not loaded: no route


def test_injected_500s_count_under_their_route(emulators, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """A y-5xx rehearsal is visible to the prometheus source: the fault's 500s carry route and service."""
    node = emulators("3.9.1", config=config(echo, {"status_code_metrics": True}),
                     env={"KONG_EMULATOR_FAULT_ERROR_RATE": "0.5"})
    codes = [httpx.get(node.proxy + "/open").status_code for _ in range(10)]
    assert codes.count(500) == 5
    families = scrape(node.status)
    assert value(families, "kong_http_requests_total", route="open", code="500", source="kong") == 5
    assert value(families, "kong_http_requests_total", route="open", code="200", source="service") == 5


def test_cp_reports_its_data_planes(emulators, cluster_cert, echo: Echo) -> None:  # type: ignore[no-untyped-def]
    """A CP's /metrics lists each DP: last seen, config hash, version compatibility."""
    hybrid = {"KONG_CLUSTER_CERT": str(cluster_cert.cert), "KONG_CLUSTER_CERT_KEY": str(cluster_cert.key),
              "KONG_EMULATOR_PING_INTERVAL": "0.5", "KONG_EMULATOR_RECONNECT_DELAY": "0.3-0.5"}
    cp = emulators("3.9.1", role="control_plane", env=hybrid)
    assert httpx.post(cp.admin + "/plugins", json={"name": "prometheus"}).status_code == 201
    dp = emulators("3.9.1", role="data_plane", env={**hybrid, "KONG_DATABASE": "off",
                                                    "KONG_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{cp.cluster_port}"})
    node_id = dp.env.get("KONG_NODE_ID")
    wait_for("the DP's row in /metrics",
             lambda: samples(scrape(cp.admin), "kong_data_plane_version_compatible"), log=cp.log)
    families = scrape(cp.admin)
    row = samples(families, "kong_data_plane_version_compatible")[0]
    assert row[1]["kong_version"] == "3.9.1" and row[2] == 1
    assert node_id is None or row[1]["node_id"] == node_id
    assert samples(families, "kong_data_plane_last_seen")
    dp_families = scrape(dp.status)
    assert value(dp_families, "kong_data_plane_cluster_cert_expiry_timestamp") > 0
