"""The gate sources without processes: readings and their batches, the balancer's log parsers, Prometheus's
parser, deltas and availability by version and config, the wrk script and summary, the shift's source
helpers (latency order, achieved vs asked share, per-source checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.checks.gate_sources import latency_source, share_check, source_checks, source_tests
from harness.checks.shift import alpha_split
from harness.gates import GateConfig
from harness.model import ProbeRecord, Side
from harness.sequential import SequentialConfig, SequentialState
from harness.sources import Reading, Source, Unavailable
from harness.sources.balancer import parse_haproxy_line, parse_nginx_line, reading_of
from harness.sources.base import NodeCounts, samples, status_class
from harness.sources.probe import reading_of_records
from harness.sources.prometheus import (
    PrometheusSource,
    Scrape,
    Target,
    bucket_bounds,
    counts_of,
    coverage,
    delta,
    parse_metrics,
)
from harness.traffic import Backend, ProbeRequest
from harness.traffic.haproxy import ACCESS_LOG_FORMAT, SPLIT_BACKEND, parse_show_stat, render_config
from harness.traffic.nginx import UPSTREAM_LOG_FORMAT
from harness.traffic.nginx import render_config as nginx_config
from harness.traffic.usertraffic import connections_for, lua_script, lua_string, parse_summary

SIDES: dict[str, Side] = {"x1": "x", "x2": "x", "y1": "y", "y2": "y"}


# ---- readings -----------------------------------------------------------------------------------------

def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 301, 404, 503, 99, 600)] == ["2xx", "3xx", "4xx", "5xx", "other", "other"]


def test_samples_fail_on_5xx_and_carry_bounds() -> None:
    c = samples("y1", "y", [(200, 10.0), (503, 0.4), (404, 3.0)], resolution_ms=1.0)
    assert (c.answers, c.failed, dict(c.classes)) == (3, 1, {"2xx": 1, "5xx": 1, "4xx": 1})
    assert c.figure_ms == (10.0, 0.4, 3.0)
    assert c.low_ms == (9.0, 0.0, 2.0) and c.high_ms == (11.0, 1.4, 4.0)


def test_readings_add_up_per_node_and_side() -> None:
    a = reading_of([("y1", 200, 1.0), ("y2", 500, 2.0), ("x1", 200, 1.0)], SIDES)
    b = reading_of([("y2", 500, 3.0), ("x1", 200, 1.0), ("x2", 502, 1.0)], SIDES)
    total = a.plus(b)
    assert total.nodes["y2"].answers == 2 and total.nodes["y2"].failed == 2
    assert (total.side("x").answers, total.side("x").failed) == (3, 1)
    assert total.share_y == 3 / 6
    assert total.breakdown("y") == "y2 answered 2 of 2 with 5xx (5xx: 2); y1 0 of 1"


def test_a_batch_compares_y_lower_bounds_with_x_upper_bounds() -> None:
    r = Reading.of("prometheus", [NodeCounts("x1", "x", 2, 0, {"2xx": 2}, (5.0, 5.0), (2.0, 2.0), (5.0, 5.0)),
                                  NodeCounts("y1", "y", 1, 1, {"5xx": 1}, (7.0,), (5.0,), (7.0,))], "histogram")
    b = r.batch(0.25)
    assert (b.x_answers, b.x_failed, b.y_answers, b.y_failed) == (2, 0, 1, 1)
    assert b.x_latencies_ms == (5.0, 5.0) and b.y_latencies_ms == (5.0,)
    assert r.batch(0.25, latency=False).y_latencies_ms == ()
    assert Reading.of("prometheus", [], "none").batch(0.25).x_latencies_ms == ()


@given(st.lists(st.floats(0, 50), min_size=30, max_size=60), st.integers(0, 10_000))
def test_bucketed_y_no_slower_than_x_plus_margin_is_never_above_it(values: list[float], seed: int) -> None:
    """Validity of the conservative bounds: with Y = X + margin exactly, Y's lower bucket bound less the
    margin never exceeds X's upper bound, answer by answer (so the latency test's null holds)."""
    bounds = [1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, float("inf")]
    margin = 25.0

    def bucket(v: float) -> tuple[float, float]:
        i = next(i for i, b in enumerate(bounds) if v <= b)
        return (bounds[i - 1] if i else 0.0), bounds[i]

    for v in values:
        assert bucket(v + margin)[0] - margin <= bucket(v)[1]


def test_probe_records_fail_on_a_wrong_status_and_skip_probe_errors() -> None:
    def rec(seq: int, side: str | None, status: int | None, ok: bool) -> ProbeRecord:
        return ProbeRecord(seq, "r", "GET", "/", 1.0, 1.0, 1.01, side, None if side is None else f"{side}1",  # type: ignore[arg-type]
                           status, 10.0, None if status else "connect", False, ok)

    r = reading_of_records([rec(0, "x", 200, True), rec(1, "y", 401, True), rec(2, "y", 200, False),
                            rec(3, None, None, False)])
    assert (r.side("y").answers, r.side("y").failed, r.side("x").answers) == (2, 1, 1)


def test_unavailable_is_a_source_that_says_why() -> None:
    u = Unavailable("balancer", "no balancer here")
    assert isinstance(u, Source)
    assert u.available() == (False, "no balancer here") and u.read().answers == 0


# ---- the balancer's logs ------------------------------------------------------------------------------------

def test_haproxy_lines() -> None:
    assert parse_haproxy_line("kuh1 kuh_split y2 503 0 -1", SPLIT_BACKEND) == ("y2", 503, 0.5)
    assert parse_haproxy_line("kuh1 kuh_split x1 200 21 20\n", SPLIT_BACKEND) == ("x1", 200, 21.5), "truncated ms"
    assert parse_haproxy_line("kuh1 kuh_pin_y y1 200 1 1", SPLIT_BACKEND) is None, "pinned requests are no split"
    assert parse_haproxy_line("[ALERT] something", SPLIT_BACKEND) is None
    assert parse_haproxy_line("kuh1 kuh_split x1 abc 1 1", SPLIT_BACKEND) is None


def test_haproxy_config_logs_each_request_only_when_asked() -> None:
    backends = [Backend("x1", "x", "127.0.0.1", 8001), Backend("y1", "y", "127.0.0.1", 8002)]
    plain = render_config(backends, port=9000, socket_path=Path("/tmp/a.sock"), x=100, y=0)
    logged = render_config(backends, port=9000, socket_path=Path("/tmp/a.sock"), x=100, y=0, access_log=True)
    assert "log-format" not in plain and "log " not in plain and "ring " not in plain
    assert "    log ring@kuh_requests local0" in logged and "ring kuh_requests\n    format raw" in logged
    assert "    stats timeout 1d" in logged, "the streaming connection survives idle traffic"
    assert f'    log-format "{ACCESS_LOG_FORMAT}"' in logged and "    log global" in logged


def test_nginx_lines_and_config() -> None:
    names = {"127.0.0.1:8001": "x1", "127.0.0.1:8002": "y1"}
    assert parse_nginx_line("kuh1 kuh_split 127.0.0.1:8002 500 500 0.012 0.011", "kuh_split", names) == \
        ("y1", 500, 12.0)
    assert parse_nginx_line("kuh1 kuh_split 127.0.0.1:8001 - 502 0.000 -", "kuh_split", names) == ("x1", 502, 0.0)
    assert parse_nginx_line("kuh1 kuh_split kuh_split - 502 0.000 -", "kuh_split", names) == ("kuh_split", 502, 0.0)
    assert parse_nginx_line("kuh1 kuh_pin_y 127.0.0.1:8002 200 200 0.001 0.001", "kuh_split", names) is None
    text = nginx_config([Backend("x1", "x", "127.0.0.1", 8001), Backend("y1", "y", "127.0.0.1", 8002)],
                        run_dir=Path("/tmp/n"), port=9000, weights={"x1": 1, "y1": 1}, drained=frozenset(),
                        generation=1)
    assert f"log_format kuh_upstream '{UPSTREAM_LOG_FORMAT}';" in text
    assert "access_log /tmp/n/upstream.log kuh_upstream;" in text


SHOW_STAT = """# pxname,svname,qcur,stot,econ,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,rtime,ttime,
kuh_in,FRONTEND,,10,,,0,8,0,0,2,0,,,
kuh_split,x1,0,5,0,0,0,5,0,0,0,0,1,2,
kuh_split,y2,0,5,1,0,0,3,0,0,1,0,3,4,
kuh_split,BACKEND,0,10,1,0,0,8,0,0,1,0,2,3,
kuh_pin_y,y2,0,9,0,0,0,9,0,0,0,0,1,1,
"""


def test_show_stat_rows_of_the_split_backend() -> None:
    stats = parse_show_stat(SHOW_STAT, SPLIT_BACKEND)
    assert set(stats) == {"x1", "y2"}
    y = stats["y2"]
    assert (y.answers, y.hrsp_5xx, y.econ, y.failed, y.total, y.rtime_ms) == (4, 1, 1, 2, 5, 3)


# ---- prometheus ---------------------------------------------------------------------------------------------

METRICS_28 = """# HELP kong_http_status x
# TYPE kong_http_status counter
kong_http_status{service="a",route="r1",code="200"} 90
kong_http_status{service="b",route="r2",code="200"} 5
kong_http_status{service="b",route="r2",code="503"} 5
# HELP kong_latency x
# TYPE kong_latency histogram
kong_latency_bucket{service="a",route="r1",type="kong",le="1"} 80
kong_latency_bucket{service="a",route="r1",type="kong",le="2"} 90
kong_latency_bucket{service="a",route="r1",type="kong",le="+Inf"} 90
kong_latency_bucket{service="a",route="r1",type="request",le="1"} 3
kong_latency_bucket{service="a",route="r1",type="request",le="+Inf"} 90
kong_latency_bucket{service="b",route="r2",type="kong",le="5"} 10
kong_latency_bucket{service="b",route="r2",type="kong",le="+Inf"} 10
"""
METRICS_3X = """# HELP kong_http_requests_total x
# TYPE kong_http_requests_total counter
kong_http_requests_total{service="a",route="r1",code="200",source="service",workspace="default",consumer=""} 7
kong_http_requests_total{service="a",route="r1",code="500",source="kong",workspace="default",consumer=""} 3
# HELP kong_kong_latency_ms x
# TYPE kong_kong_latency_ms histogram
kong_kong_latency_ms_bucket{service="a",route="r1",workspace="default",le="20"} 9
kong_kong_latency_ms_bucket{service="a",route="r1",workspace="default",le="30"} 10
kong_kong_latency_ms_bucket{service="a",route="r1",workspace="default",le="+Inf"} 10
kong_kong_latency_ms_count{service="a",route="r1",workspace="default"} 10
"""


def test_parse_2_8_and_3_x_names() -> None:
    old = parse_metrics(METRICS_28)
    assert dict(old.codes) == {200: 95, 503: 5}
    # type=kong only, summed over series; a bound one series did not write holds its count below that bound
    assert dict(old.buckets) == {1.0: 80, 2.0: 90, 5.0: 100, float("inf"): 100}
    new = parse_metrics(METRICS_3X)
    assert dict(new.codes) == {200: 7, 500: 3}
    assert dict(new.buckets) == {20.0: 9, 30.0: 10, float("inf"): 10}


def test_bucket_bounds_from_cumulative_counts() -> None:
    assert bucket_bounds({20.0: 9, 30.0: 10, float("inf"): 10}) == [(0.0, 20.0, 9), (20.0, 30.0, 1)]
    assert bucket_bounds({}) == []


def test_deltas_and_a_restart() -> None:
    before = Scrape({200: 10.0}, {1.0: 10.0, float("inf"): 10.0})
    now = Scrape({200: 15.0, 500: 2.0}, {1.0: 12.0, 5.0: 17.0, float("inf"): 17.0})
    change, restarted = delta(now, before)
    assert not restarted and dict(change.codes) == {200: 5.0, 500: 2.0}
    c = counts_of("y1", "y", change, latency=True)
    assert (c.answers, c.failed, dict(c.classes)) == (7, 2, {"2xx": 5, "5xx": 2})
    assert c.low_ms == (0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0) and c.high_ms == (1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0)
    reset, restarted = delta(Scrape({200: 3.0}, {}), before)
    assert restarted and dict(reset.codes) == {200: 3.0}
    assert counts_of("y1", "y", change, latency=False).low_ms == ()


@pytest.mark.parametrize(("version", "config", "counts", "latency", "why"), [
    ("2.8.4", [{"name": "prometheus"}], True, True, "2.8 reports statuses and latencies"),
    ("3.4.2", [{"name": "prometheus"}], False, False, "status_code_metrics off (the 3.x default)"),
    ("3.8.1", [{"name": "prometheus", "config": {"status_code_metrics": True}}], True, False, "latency_metrics off"),
    ("3.8.1", [{"name": "prometheus", "enabled": False, "config": {"status_code_metrics": True}}], False, False,
     "no enabled prometheus plugin"),
    ("3.8.1", [{"name": "key-auth"}], False, False, "no enabled prometheus plugin"),
    ("3.8.1", None, False, False, "could not be read"),
    ("3.8.1", {"services": [{"name": "a", "plugins": [{"name": "prometheus", "config": {
        "status_code_metrics": True, "latency_metrics": True}}]}]}, True, True, "scoped to some services"),
    ("3.8.1", {"plugins": [{"name": "prometheus", "config": {"status_code_metrics": True, "latency_metrics": True}}]},
     True, True, "(global;"),
])
def test_coverage_by_version_and_config(version: str, config: object, counts: bool, latency: bool, why: str) -> None:
    c = coverage(version, config)
    assert (c.counts, c.latency) == (counts, latency)
    assert why in c.why


def test_prometheus_source_reads_deltas_from_a_fetch() -> None:
    texts = {"x": METRICS_3X, "y": METRICS_3X}
    flags = [{"name": "prometheus", "config": {"status_code_metrics": True, "latency_metrics": True}}]
    src = PrometheusSource([Target("x1", "x", "3.4.2", "x"), Target("y1", "y", "3.8.1", "y")],
                           {"x": flags, "y": flags}, fetch=lambda url: texts[url])
    assert src.available()[0] and src.read().answers == 0
    texts["y"] = METRICS_3X.replace("} 3\n", "} 13\n")
    r = src.read()
    assert r.nodes["y1"].failed == 10 and r.nodes["x1"].answers == 0

    def broken(url: str) -> str:
        raise OSError("connection refused")

    src._fetch = broken
    assert any("y1: /metrics not read (connection refused)" in n for n in src.read().notes)


def test_prometheus_unavailable_names_the_side_and_keeps_x_unwritten() -> None:
    src = PrometheusSource([Target("x1", "x", "3.4.2", "u"), Target("y1", "y", "3.8.1", "u")],
                           {"x": [{"name": "prometheus"}], "y": [{"name": "prometheus", "config": {
                               "status_code_metrics": True}}]}, fetch=lambda url: "")
    ok, why = src.available()
    assert not ok and why.startswith("Kong's prometheus metrics cannot be read on every node (X: ")
    assert "Y:" not in why and "gates use the others" in why


# ---- wrk ----------------------------------------------------------------------------------------------------

def test_lua_strings_escape_everything_outside_printable_ascii() -> None:
    assert lua_string('a"b\\c\n') == '"a\\034b\\092c\\010"'
    assert lua_string("é") == '"\\195\\169"'


def test_lua_script_cycles_the_mix_and_paces_connections() -> None:
    script = lua_script([ProbeRequest(path="/a", headers={"apikey": "k", "X-KUH-Pin": "y"}),
                         ProbeRequest(method="POST", path="/b", body=b"{}")], 40.0)
    assert '  reqs[1] = wrk.format("GET", "/a", {["apikey"] = "k"}, nil)' in script, "no pin header"
    assert '  reqs[2] = wrk.format("POST", "/b", {}, "{}")' in script
    assert script.index("init = function(args)") < script.index("reqs[1] ="), "formatted once wrk knows the Host"

    assert "delay = function() return 40 end" in script
    assert "delay" not in lua_script([ProbeRequest(path="/a")], None)


def test_wrk_summary_and_connections() -> None:
    text = ("Running 1s test\nkuh-wrk requests=150\nkuh-wrk duration_us=1500000\nkuh-wrk status_errors=2\n"
            "kuh-wrk socket_errors=0\nkuh-wrk p50_us=20400\nkuh-wrk p90_us=20600\nkuh-wrk p99_us=21000\n")
    r = parse_summary(text, 100)
    assert r is not None and (r.requests, r.rate, r.p50_ms, r.p99_ms) == (150, 100.0, 20.4, 21.0)
    assert "150 requests in 1.5 s = 100.0 req/s (asked 100 req/s)" in r.line()
    assert parse_summary("wrk: connection refused", 100) is None
    assert (connections_for(10), connections_for(100), connections_for(1e6)) == (1, 4, 64)


# ---- the shift's source helpers --------------------------------------------------------------------------

def test_latency_comes_from_the_balancer_then_prometheus_then_the_probe() -> None:
    assert latency_source([("probe", "samples"), ("prometheus", "histogram"), ("balancer", "samples")]) == "balancer"
    assert latency_source([("probe", "samples"), ("prometheus", "histogram")]) == "prometheus"
    assert latency_source([("probe", "samples"), ("prometheus", "none")]) == "probe"
    assert latency_source([("prometheus", "none")]) == "probe"


def test_only_the_latency_source_runs_the_latency_test() -> None:
    assert source_tests(25, latency=True) == ("error_rate", "latency")
    assert source_tests(25, latency=False) == ("error_rate",)
    assert source_tests(100, latency=False) == ("error_rate_limit",)


def test_achieved_share_against_asked() -> None:
    near = reading_of([("y1", 200, 1.0)] * 52 + [("x1", 200, 1.0)] * 948, SIDES)
    check, warning = share_check(5, near)
    assert warning is None and check.outcome == "pass" and check.figure == 0.052
    far = reading_of([("y1", 200, 1.0)] * 10 + [("x1", 200, 1.0)] * 990, SIDES)
    check, warning = share_check(5, far)
    assert warning is not None and "asked 5 %: they part" in warning and "kept-alive" in warning
    assert check.outcome == "pass", "a parted share is reported, it does not fail Y"


def test_source_checks_judge_y_on_bounds() -> None:
    config = GateConfig(max_error_rate=0.01, max_p99_ms=100, alpha=0.01, min_samples=10)
    one = reading_of([("y1", 500, 1.0)] + [("y1", 200, 1.0)] * 49, SIDES)
    assert [c.outcome for c in source_checks(one, config, latency=True)] == ["pass", "pass"]
    six = reading_of([("y1", 500, 1.0)] * 6 + [("y1", 200, 1.0)] * 44, SIDES)
    assert source_checks(six, config, latency=False)[0].outcome == "fail"
    slow = reading_of([("y1", 200, 500.0)] * 50, SIDES)
    checks = source_checks(slow, config, latency=True)
    assert checks[1].name == "p99_y[balancer]" and checks[1].outcome == "fail"


def test_alpha_is_split_over_every_source_asked() -> None:
    from harness.plan import load_plan

    plan = load_plan("plans/scenarios/y-5xx.yaml")
    one = alpha_split(plan)
    assert {u[1] for u in one.units} == {"probe"}
    # steps 10, 50 run 2 tests, 100 runs 1; 6 fixed checks each; the run's one retake: 6 more fixed checks
    assert len(one.units) == 3 * (2 + 6) - 1 + 6


def test_a_source_fails_a_y_5xx_stream_sequentially() -> None:
    """The balancer's counts of a Y failing 3 % against a clean X reject within a few seconds of looks."""
    rng = np.random.default_rng(7)
    state = SequentialState.start(SequentialConfig(alpha=0.01 / 24, hold_seconds=30, max_hold_seconds=60,
                                                   min_samples=30, max_error_rate_delta=0.01,
                                                   tests=("error_rate",)))
    looks = 0
    while state.verdict == "continue":
        ys = [("y1", 500 if rng.random() < 0.03 else 200, 1.0) for _ in range(25)]
        xs = [("x1", 200, 1.0) for _ in range(225)]
        state = state.update(reading_of(ys + xs, SIDES).batch(0.25, latency=False))
        looks += 1
    assert (state.verdict, state.rejected_by) == ("reject", "error_rate")
    assert looks < 120, "decided before the hold was over"
