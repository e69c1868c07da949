"""Differential checks: observe() over a mock transport, compare() on hand-made observations; run_bounded on a
fake clock; the concurrent differential, the scale smoke and the probe's mix against local fake proxies (threaded
http.server on 127.0.0.1, started and stopped by each test)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from harness.behaviour import key_auth_401
from harness.checks.scale import smoke
from harness.checks.staging import differential as staging_differential
from harness.corpus import CorpusRequest, KeyAuth, build_corpus, fingerprint
from harness.deadline import Deadline
from harness.differential import (
    BATCH_BASE_S,
    BATCH_PER_REQUEST_S,
    Difference,
    Observation,
    Target,
    batch_seconds,
    compare,
    compare_nodes,
    expected_for,
    observe,
    request_timeout,
    run_bounded,
)
from harness.errors import NodeUnreachable, TrafficError
from harness.model import Node
from harness.plan_sections import DifferentialPlan
from harness.run.traffic import probe_mix
from harness.sampling import sample_corpus

SECRET = "fake-key-alice-0001"
KA = KeyAuth(scope="service")
PLAIN = CorpusRequest("orders-list", "orders-list", "GET", "/orders", (("Host", "kuh-probe.invalid"),))
NO_KEY = CorpusRequest("acc/no-key", "acc", "GET", "/accounts", (), "missing", KA)
WRONG = CorpusRequest("acc/wrong-key", "acc", "GET", "/accounts", (("apikey", "kuh-not-a-real-key"),),
                      "invalid", KA)
GOOD = CorpusRequest("acc/good-key", "acc", "GET", "/accounts", (("apikey", SECRET),), "good", KA,
                     fingerprint(SECRET), "alice")


def echo(**over: Any) -> dict[str, Any]:
    """What the echo upstream reports having received."""
    body: dict[str, Any] = {
        "method": "GET", "path": "/orders", "query": {}, "body": "",
        "headers": {"host": "127.0.0.1:9", "x-forwarded-for": "127.0.0.1", "via": "1.1 kong/3.8.1",
                    "x-kong-request-id": "abc", "user-agent": "python-httpx"},
    }
    for key, value in over.items():
        if key == "headers":
            body["headers"] = {**body["headers"], **value}
        else:
            body[key] = value
    return body


def proxied(upstream: dict[str, Any], status: int = 200) -> Observation:
    return Observation(status, None, None, upstream, json.dumps(upstream))


def generated(status: int, message: str | None, challenge: str | None = None) -> Observation:
    return Observation(status, message, challenge, None, json.dumps({"message": message}))


def rejected(version: str, case: str) -> Observation:
    exp = key_auth_401(version, case)  # type: ignore[arg-type]
    return generated(exp.status, exp.message, exp.www_authenticate)


# --- observe ----------------------------------------------------------------------------------------

def client_answering(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_observe_sends_the_corpus_request_and_reads_a_proxied_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=echo())

    with client_answering(handler) as client:
        obs = observe(client, "http://127.0.0.1:8000/", GOOD, where="y1")
    assert (str(seen[0].url), seen[0].method) == ("http://127.0.0.1:8000/accounts", "GET")
    assert seen[0].headers["apikey"] == SECRET
    assert obs.status == 200 and obs.message is None
    assert obs.upstream is not None and obs.upstream["path"] == "/orders"


def test_observe_reads_kongs_own_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Unauthorized", "request_id": "r1"},
                              headers={"WWW-Authenticate": "Key"})

    with client_answering(handler) as client:
        obs = observe(client, "http://127.0.0.1:8000", WRONG, where="y1")
    assert (obs.status, obs.message, obs.www_authenticate, obs.upstream) == (401, "Unauthorized", "Key", None)


def test_observe_takes_a_non_json_body_as_text() -> None:
    with client_answering(lambda r: httpx.Response(502, text="<html>bad gateway</html>")) as client:
        obs = observe(client, "http://127.0.0.1:8000", PLAIN, where="x1")
    assert (obs.status, obs.message, obs.upstream) == (502, None, None)
    assert obs.body_text == "<html>bad gateway</html>"


def test_observe_names_the_node_and_request_when_nothing_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_answering(handler) as client, pytest.raises(NodeUnreachable) as info:
        observe(client, "http://127.0.0.1:8000", GOOD, where="y2[emulator://3.8.1]")
    text = str(info.value)
    assert "y2[emulator://3.8.1]" in text and "acc/good-key" in text and "ConnectError" in text
    assert SECRET not in text


# --- compare: statuses and Kong-generated answers ---------------------------------------------------

def test_identical_proxied_answers_have_no_difference() -> None:
    assert compare(PLAIN, proxied(echo()), proxied(echo()), x_version="3.4.2", y_version="3.8.1") == []


def test_a_status_difference_is_reported_alone() -> None:
    diffs = compare(GOOD, proxied(echo()), generated(401, "Unauthorized"),
                    x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("acc/good-key", "status", "200", "401")]
    assert diffs[0].render() == "acc/good-key: status: X=200 | Y=401"


@pytest.mark.parametrize("req", [NO_KEY, WRONG], ids=["no-key", "wrong-key"])
@pytest.mark.parametrize(("x_version", "y_version"), [("2.8.5", "3.4.2"), ("3.4.2", "3.6.1"),
                                                      ("3.4.2", "3.8.1"), ("3.6.0", "3.9.3")])
def test_key_auth_answers_that_changed_by_design_are_no_difference(
        req: CorpusRequest, x_version: str, y_version: str) -> None:
    case = "missing" if req.auth == "missing" else "invalid"
    x, y = rejected(x_version, case), rejected(y_version, case)
    assert compare(req, x, y, x_version=x_version, y_version=y_version) == []


def test_the_same_answer_from_both_is_a_difference_when_y_should_have_changed() -> None:
    # Y at 3.8 answering like 3.4 ("Invalid authentication credentials", no challenge) is a regression
    old = rejected("3.4.2", "invalid")
    diffs = compare(WRONG, old, old, x_version="3.4.2", y_version="3.8.1")
    assert len(diffs) == 1
    d = diffs[0]
    assert d.field == "Y key-auth answer"
    assert d.y == "Invalid authentication credentials"
    assert "Y (3.8.1) should send message 'Unauthorized' and WWW-Authenticate 'Key'" in d.note


def test_each_side_is_judged_against_its_own_version() -> None:
    x_wrong = generated(401, "Unauthorized", None)    # X at 3.4 must say "Invalid authentication credentials"
    diffs = compare(WRONG, x_wrong, rejected("3.8.1", "invalid"), x_version="3.4.2", y_version="3.8.1")
    assert [d.field for d in diffs] == ["X key-auth answer"]
    assert diffs[0].x == "Unauthorized"


def test_a_key_auth_route_with_anonymous_is_compared_as_proxied() -> None:
    anon = CorpusRequest("cat/no-key", "cat", "GET", "/catalog", (), "missing",
                         KeyAuth("service", anonymous="guest"))
    assert expected_for(anon, "3.8.1") is None
    x = proxied(echo(headers={"x-anonymous-consumer": "true"}))
    y = proxied(echo())
    diffs = compare(anon, x, y, x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("cat/no-key", "upstream header x-anonymous-consumer", "true", "null")]


def test_expected_for_only_judges_rejections() -> None:
    assert expected_for(PLAIN, "3.8.1") is None
    assert expected_for(GOOD, "3.8.1") is None
    assert expected_for(NO_KEY, "3.8.1") == key_auth_401("3.8.1", "missing")
    realm = CorpusRequest("r/wrong-key", "r", "GET", "/", (), "invalid", KeyAuth("route", realm="test-realm"))
    exp = expected_for(realm, "3.9.3")
    assert exp is not None and exp.www_authenticate == 'Key realm="test-realm"'


def test_generated_messages_are_compared_when_no_version_rule_applies() -> None:
    x, y = generated(404, "no Route matched with those values"), generated(404, "Not found")
    assert compare(PLAIN, x, y, x_version="3.4.2", y_version="3.8.1") == [
        Difference("orders-list", "message", "no Route matched with those values", "Not found")]


# --- compare: what the upstream received -------------------------------------------------------------

def test_one_side_proxied_and_the_other_not_is_a_difference() -> None:
    diffs = compare(PLAIN, proxied(echo()), generated(200, "ok"), x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("orders-list", "proxied", "True", "False")]


@pytest.mark.parametrize(
    ("field", "y_over"),
    [("method", {"method": "POST"}), ("path", {"path": "/orders/"}), ("query", {"query": {"a": "1"}}),
     ("body", {"body": "x"})],
)
def test_upstream_request_differences(field: str, y_over: dict[str, Any]) -> None:
    diffs = compare(PLAIN, proxied(echo()), proxied(echo(**y_over)), x_version="3.4.2", y_version="3.8.1")
    assert [d.field for d in diffs] == [f"upstream {field}"]


def test_volatile_upstream_headers_are_ignored_and_names_are_case_insensitive() -> None:
    x = echo(headers={"X-Forwarded-For": "10.0.0.1", "Via": "kong/3.4.2", "X-Consumer-Username": "alice"})
    y = echo(headers={"x-forwarded-for": "172.17.0.1", "x-kong-request-id": "other",
                      "x-forwarded-port": "8443", "connection": "close", "content-length": "0",
                      "x-consumer-username": "alice"})
    y["headers"].pop("user-agent")
    x["headers"]["X-Kong-Request-Id"] = "zzz"
    x["headers"].pop("x-kong-request-id")
    x["headers"].pop("via")
    assert compare(PLAIN, proxied(x), proxied(y), x_version="3.4.2", y_version="3.8.1") == []


def test_a_header_missing_upstream_on_y_is_a_difference() -> None:
    x = proxied(echo(headers={"x-consumer-username": "alice", "x-credential-identifier": "cred-1"}))
    y = proxied(echo(headers={"x-consumer-username": "alice"}))
    diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1")
    assert diffs == [Difference("acc/good-key", "upstream header x-credential-identifier", "cred-1", "null")]


# --- secrets ------------------------------------------------------------------------------------------

def test_secrets_never_appear_in_rendered_upstream_differences() -> None:
    # hide_credentials lost on Y: the key reaches Y's upstream in a header and in the query
    x = proxied(echo())
    y = proxied(echo(headers={"apikey": SECRET}, query={"apikey": SECRET}))
    diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1", secrets={SECRET, "fake-key-bob-0002"})
    assert [d.field for d in diffs] == ["upstream query", "upstream header apikey"]
    for d in diffs:
        assert SECRET not in d.render()
    assert f"<{fingerprint(SECRET)}>" in diffs[1].render()


def test_a_secret_inside_another_secret_leaves_no_part_behind() -> None:
    short, long = "fake-key-0001", "fake-key-0001-rotated"
    x = proxied(echo(headers={"apikey": long}))
    y = proxied(echo())
    for _ in range(5):  # set order varies between runs: both orders must redact fully
        for secrets in ([short, long], [long, short]):
            diffs = compare(GOOD, x, y, x_version="3.4.2", y_version="3.8.1", secrets=secrets)
            assert "rotated" not in diffs[0].render()


def test_secrets_never_appear_in_rendered_key_auth_differences() -> None:
    leaky = generated(401, f"invalid key {SECRET}", None)   # a broken Y echoing a key in its message
    diffs = compare(WRONG, rejected("3.4.2", "invalid"), leaky, x_version="3.4.2", y_version="3.8.1",
                    secrets={SECRET})
    assert [d.field for d in diffs] == ["Y key-auth answer"]
    assert SECRET not in diffs[0].render()


def test_secrets_never_appear_in_rendered_message_differences() -> None:
    diffs = compare(PLAIN, generated(404, "Not found"), generated(404, f"no route for {SECRET}"),
                    x_version="3.4.2", y_version="3.8.1", secrets=[SECRET])
    assert len(diffs) == 1 and SECRET not in diffs[0].render()


def test_long_values_are_cut_after_redaction() -> None:
    x = proxied(echo(body="a" * 1000 + SECRET))
    diffs = compare(PLAIN, x, proxied(echo()), x_version="3.4.2", y_version="3.8.1", secrets=[SECRET])
    assert len(diffs[0].x) == 300
    assert "fake-key" not in diffs[0].render()


# --- many requests at once: run_bounded -------------------------------------------------------------

class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_run_bounded_keeps_the_items_order_and_at_most_concurrency_in_flight() -> None:
    concurrency = 4
    first_wave = threading.Barrier(concurrency, timeout=30)   # the first four must run at the same time
    lock = threading.Lock()
    in_flight, most = 0, 0

    def work(i: int) -> int:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        if i < concurrency:
            first_wave.wait()
        with lock:
            in_flight -= 1
        return i * i

    batch = run_bounded(list(range(40)), work, concurrency=concurrency,
                        deadline=Deadline.start(600, what="t", where="here"))
    assert batch.results == tuple(i * i for i in range(40))
    assert batch.not_sent == ()
    assert most == concurrency


def test_run_bounded_names_what_the_deadline_left_unsent() -> None:
    clock = FakeClock()
    deadline = Deadline.start(10, what="t", where="here", clock=clock)

    def work(i: int) -> int:
        request_timeout(deadline)   # what a request does first: its own timeout within the deadline
        clock.t += 3                # each item takes 3 s on the fake clock
        return i

    batch = run_bounded(list(range(10)), work, concurrency=1, deadline=deadline)
    assert batch.results[:4] == (0, 1, 2, 3) and set(batch.results[4:]) == {None}
    assert batch.not_sent == (4, 5, 6, 7, 8, 9)


def test_a_request_cut_short_by_the_deadline_is_not_sent_rather_than_a_fault() -> None:
    clock = FakeClock()
    deadline = Deadline.start(10, what="t", where="here", clock=clock)

    def work(i: int) -> int:
        clock.t += 6
        if clock.t >= 10:
            raise NodeUnreachable("timed out")  # the request's timeout was the deadline's remainder
        return i

    assert run_bounded([0, 1, 2], work, concurrency=1, deadline=deadline).not_sent == (1, 2)


def test_run_bounded_raises_the_first_error_and_starts_nothing_after_it() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 3:
            raise NodeUnreachable(f"item {i} got no answer")
        return i

    with pytest.raises(NodeUnreachable, match="item 3"):
        run_bounded(list(range(10)), work, concurrency=1, deadline=Deadline.start(60, what="t", where="here"))
    assert started == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        run_bounded([1], lambda i: i, concurrency=0, deadline=Deadline.start(60, what="t", where="here"))


def test_the_batch_deadline_grows_with_the_requests_and_shrinks_with_concurrency() -> None:
    assert batch_seconds(0, concurrency=8) == BATCH_BASE_S
    assert batch_seconds(10_000, concurrency=8) == BATCH_BASE_S + BATCH_PER_REQUEST_S * 10_000 / 8
    assert batch_seconds(10_000, concurrency=1) > batch_seconds(10_000, concurrency=8)


# --- a local fake proxy pair: concurrent sends find what serial sends find --------------------------------

GOOD_KEY = "fake-key-0001"


def fake_config(services: int = 60) -> dict[str, Any]:
    """Two routes per service, key-auth on every 4th service, one consumer with a key."""
    cfg: dict[str, Any] = {"_format_version": "3.0", "services": [], "plugins": [],
                           "consumers": [{"username": "alice", "keyauth_credentials": [{"key": GOOD_KEY}]}]}
    for i in range(services):
        cfg["services"].append({"name": f"svc-{i}", "url": "http://127.0.0.1:9",
                                "routes": [{"name": f"r-{i}-{r}", "paths": [f"/s{i}/r{r}"],
                                            "methods": ["GET"] if r == 0 else None} for r in range(2)]})
        if i % 4 == 0:
            cfg["plugins"].append({"name": "key-auth", "service": f"svc-{i}"})
    return cfg


class FakeKong:
    """A threaded http.server on 127.0.0.1 answering as a Kong node of ``version`` in front of an echo:
    key-auth on every 4th service's paths; ``quirks`` (a path prefix -> "404" or "header") make it differ."""

    def __init__(self, version: str, quirks: dict[str, str] | None = None, fail: str | None = None) -> None:
        self.version, self.quirks, self.fail = version, quirks or {}, fail
        self.requests = 0
        self._lock = threading.Lock()
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # else 40 ms per answer (delayed ACK; TOOLING.md)

            def log_message(self, *args: Any) -> None:
                pass

            def version_string(self) -> str:   # the Server header http.server sends: Kong's own
                return f"kong/{node.version}"

            def do_GET(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                status, payload, extra = node.answer(self.command, self.path, dict(self.headers))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {**extra, "Content-Type": "application/json",
                                    "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_DELETE = do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def node(self, name: str) -> Node:
        return Node(name, f"emulator://{self.version}", "y", "dbless", self.version, None, self.url, None)

    def __enter__(self) -> FakeKong:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server_close()

    def server_close(self) -> None:
        self.server.server_close()
        self.thread.join(timeout=10)

    def answer(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests += 1
        url = urlsplit(target)
        if self.fail and url.path.startswith(self.fail):
            return 503, {"message": "name resolution failed"}, {}
        quirk = next((q for prefix, q in self.quirks.items() if url.path.startswith(prefix)), None)
        if quirk == "404":
            return 404, {"message": "no Route matched with those values"}, self.own_headers()
        service = int(url.path.split("/")[1][1:])
        lower = {k.lower(): v for k, v in headers.items()}
        if service % 4 == 0:
            key = lower.get("apikey") or parse_qs(url.query).get("apikey", [None])[0]
            if key != GOOD_KEY:
                exp = key_auth_401(self.version, "missing" if key is None else "invalid")
                return 401, {"message": exp.message}, ({"WWW-Authenticate": exp.www_authenticate}
                                                       if exp.www_authenticate else {}) | self.own_headers()
        seen = {**{k: v for k, v in lower.items() if k != "host"}, "host": "127.0.0.1:9",
                "via": f"1.1 kong/{self.version}", "x-kong-request-id": "0" * 32}
        if quirk == "header":
            seen["x-extra"] = "1"
        proxied = {"Via": f"1.1 kong/{self.version}", "X-Kong-Upstream-Latency": "1", "X-Kong-Proxy-Latency": "0",
                   "X-Kong-Request-Id": "0" * 32}
        return 200, {"method": method, "path": url.path, "query": {}, "body": "", "headers": seen}, proxied

    def own_headers(self) -> dict[str, str]:
        """The headers of Kong's own answers at 3.8/3.9 (KONG-FACTS §6.3)."""
        return {"X-Kong-Response-Latency": "0", "X-Kong-Request-Id": "0" * 32}   # Server: version_string()


@pytest.fixture
def pair() -> Iterator[tuple[FakeKong, FakeKong]]:
    with FakeKong("3.8.1") as x, FakeKong("3.9.0", quirks={"/s13/": "header", "/s27/": "404"}) as y:
        yield x, y


def test_concurrent_sends_find_exactly_what_serial_sends_find(pair: tuple[FakeKong, FakeKong]) -> None:
    x, y = pair
    corpus = build_corpus(fake_config())
    xt, yt = Target.of(x.node("x1")), Target.of(y.node("y1"))
    serial = compare_nodes(corpus.requests, xt, [yt], secrets=corpus.secrets, concurrency=1)
    concurrent = compare_nodes(corpus.requests, xt, [yt], secrets=corpus.secrets, concurrency=8)
    assert concurrent.differences == serial.differences
    assert [d.render() for _, d in serial.differences] == [
        "r-13-0: upstream header x-extra: X=null | Y=1",
        "r-13-1: upstream header x-extra: X=null | Y=1",
        "r-27-0: status: X=200 | Y=404",
        "r-27-1: status: X=200 | Y=404",
    ]
    assert (serial.compared, concurrent.compared) == (len(corpus.requests), len(corpus.requests))
    assert serial.not_sent == concurrent.not_sent == ()
    assert x.requests == y.requests == 2 * len(corpus.requests)


def test_staging_differential_samples_sends_concurrently_and_says_what_it_covered(
        pair: tuple[FakeKong, FakeKong]) -> None:
    x, y = pair
    corpus = build_corpus(fake_config())
    report = staging_differential(corpus, x.node("x1"), y.node("y1"), DifferentialPlan(budget=40, concurrency=4))
    cov = report.coverage
    assert cov is not None and cov.sampled and cov.requests == report.compared == 40
    assert cov.classes_covered == cov.classes_total == len(corpus.classes())
    assert report.complete and report.concurrency == 4
    assert y.requests == 40
    lines = report.render_text().splitlines()
    assert lines[0] == f"40 requests sent to X and to Y; {len(report.differences)} differences"
    assert lines[1] == f"  covered: {cov.summary()}; 4 in flight"
    assert report.summary().startswith(f"40 requests, {len(report.differences)} differences; "
                                       f"{cov.routes_probed}/120 routes, {cov.classes_total}/{cov.classes_total} "
                                       "classes (sampled)")
    # the whole corpus under the default budget: nothing sampled, the planted differences found
    whole = staging_differential(corpus, x.node("x1"), y.node("y1"))
    assert whole.coverage is not None and not whole.coverage.sampled
    assert len(whole.differences) == 4


def test_a_deadline_that_passes_is_reported_as_requests_not_sent(pair: tuple[FakeKong, FakeKong]) -> None:
    x, y = pair
    corpus = build_corpus(fake_config(8))
    report = staging_differential(corpus, x.node("x1"), y.node("y1"), deadline_seconds=0)
    assert not report.complete and report.compared == 0
    assert report.not_sent == tuple(r.name for r in corpus.requests)
    assert "NOT SENT: 24 requests, the deadline of 0 s passed first: r-0-0/no-key" in report.render_text()
    assert report.summary().endswith("; 24 NOT SENT (deadline 0 s)")
    assert x.requests == y.requests == 0


def test_a_node_that_answers_nothing_is_named(pair: tuple[FakeKong, FakeKong]) -> None:
    x, _ = pair
    corpus = build_corpus(fake_config(4))
    gone = Node("y9", "http://127.0.0.1:1", "y", "dbless", "3.9.0", None, "http://127.0.0.1:1", None)
    with pytest.raises(NodeUnreachable, match=r"y9\[http://127.0.0.1:1\]: GET /s0/r0 \(r-0-0/no-key\)"):
        staging_differential(corpus, x.node("x1"), gone, DifferentialPlan(concurrency=4))


@dataclass
class FakeStatus:
    ready_code: int = 200
    config_hash: str = "h1"

    def ready(self) -> tuple[int, str]:
        return self.ready_code, "" if self.ready_code == 200 else "no configuration"

    def status(self) -> dict[str, Any]:
        return {"configuration_hash": self.config_hash}


def test_the_scale_smoke_compares_each_new_node_with_the_first_on_the_same_sample() -> None:
    corpus = build_corpus(fake_config())
    chosen = sample_corpus(corpus, 50).requests
    odd_route = next(r for r in chosen if r.auth == "none")           # a route the sample surely sends
    with FakeKong("3.9.0") as first, FakeKong("3.9.0") as same, \
            FakeKong("3.9.0", quirks={odd_route.path: "404"}) as odd, FakeKong("3.9.0") as unready:
        ref, n2, n3, n4 = first.node("y1"), same.node("y2"), odd.node("y3"), unready.node("y4")
        statuses = {"y1": FakeStatus(), "y2": FakeStatus(), "y3": FakeStatus(config_hash="h2"),
                    "y4": FakeStatus(503)}
        clients = SimpleNamespace(status=lambda node: statuses[node.name])
        problems = smoke(clients, corpus, ref, [n2, n3, n4],  # type: ignore[arg-type]
                         DifferentialPlan(budget=50, concurrency=4))
        assert problems == [
            f"config drift: {n3} carries hash h2, {ref} carries h1",
            f"{n4}: /status/ready 503 'no configuration'",
            f"{n3} vs {ref}: {odd_route.name}: status: X=200 | Y=404",
        ]
        # the reference read once per request, each ready node once per request; the unready node never
        assert (first.requests, same.requests, odd.requests, unready.requests) == (50, 50, 50, 0)
        late = smoke(clients, corpus, ref, [n2], DifferentialPlan(budget=50),  # type: ignore[arg-type]
                     deadline_seconds=0)
        assert late == [f"50 of 50 smoke requests not sent: the deadline of 0 s passed first "
                        f"({', '.join(r.name for r in chosen[:10])}, ...)"]


def test_the_probe_mix_is_sampled_and_reads_x_concurrently(pair: tuple[FakeKong, FakeKong]) -> None:
    x, _ = pair
    corpus = build_corpus(fake_config())
    mix = probe_mix(x.node("x1"), corpus, kinds=30, concurrency=4)
    chosen = sample_corpus(corpus, 30).requests
    assert [m.name for m in mix] == [r.name for r in chosen]
    expected = {"none": 200, "good": 200, "missing": 401, "invalid": 401}
    assert [m.expect_status for m in mix] == [expected[r.auth] for r in chosen]
    assert x.requests == 30


def test_the_probe_mix_refuses_an_x_that_fails_before_the_shift() -> None:
    with FakeKong("3.8.1", fail="/s3/") as x, \
            pytest.raises(TrafficError, match=r"answers r-3-0 with 503 before any traffic moved"):
        probe_mix(x.node("x1"), build_corpus(fake_config(8)), concurrency=4)
