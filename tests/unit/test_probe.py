"""The probe's accounting against a fake target (no sockets), and the splitter weight arithmetic."""

from __future__ import annotations

import asyncio
import csv
import itertools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ProbeError, TrafficError
from harness.model import ProbeWindow
from harness.traffic import Backend, Probe, ProbeRequest, server_weights
from harness.traffic.base import check_backends, check_weights, split_from_server_weights
from harness.traffic.probe import ProbeTransportError, attribute, safe_path

# a few tests here hold the probe to its schedule: keep them on the worker that runs timing-sensitive tests in turn
pytestmark = pytest.mark.xdist_group("timing")

Answer = tuple[int, dict[str, str]]


class FakeTarget:
    """A Sender: ``answer(n, method, path, headers)`` returns (status, headers) or raises.

    ``serial=True`` answers one request at a time (like a single-threaded server), so a stall
    holds up everything behind it.
    """

    def __init__(self, answer: Callable[[int, str, str, Mapping[str, str]], Answer],
                 *, delay: Callable[[int], float] = lambda n: 0.0, serial: bool = False) -> None:
        self.answer = answer
        self.delay = delay
        self.serial = serial
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self._lock: asyncio.Lock | None = None

    def __call__(self) -> FakeTarget:  # the factory Probe(sender=...) calls
        return self

    async def __aenter__(self) -> FakeTarget:
        self._lock = asyncio.Lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _answer(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, Any, int]:
        n = len(self.calls)
        self.calls.append((method, path, dict(headers)))
        delay = self.delay(n)
        if delay:
            await asyncio.sleep(delay)
        status, response_headers = self.answer(n, method, path, headers)
        return status, response_headers, 0

    async def send(self, method: str, path: str, headers: Mapping[str, str],
                   body: bytes | None) -> tuple[int, Any, int]:
        assert self._lock is not None
        if self.serial:
            async with self._lock:
                return await self._answer(method, path, headers)
        return await self._answer(method, path, headers)


def probe(target: FakeTarget, mix: list[ProbeRequest] | None = None, **kwargs: Any) -> Probe:
    class Factory:
        def __call__(self) -> Any:
            return self

        async def __aenter__(self) -> Any:
            await target.__aenter__()
            return target.send

        async def __aexit__(self, *exc: object) -> None:
            return None

    return Probe("http://127.0.0.1:9", mix or [ProbeRequest(path="/a")], sender=Factory(), **kwargs)


def side_by_seq(n: int, *_: object) -> Answer:
    side = "y" if n % 4 == 0 else "x"
    return 200, {"x-kuh-side": side, "x-kuh-upstream": f"{side}1"}


def test_run_is_bounded_by_count_and_cycles_through_the_mix() -> None:
    target = FakeTarget(side_by_seq)
    mix = [ProbeRequest(path="/a"), ProbeRequest("POST", "/b", expect_status=201, name="create")]
    w = probe(target, mix, rate=1000).run(count=40, duration=10)
    assert w.count == 40
    assert sorted(r.seq for r in w.records) == list(range(40))
    assert [c[:2] for c in target.calls[:4]] == [("GET", "/a"), ("POST", "/b"), ("GET", "/a"), ("POST", "/b")]
    by_seq = {r.seq: r for r in w.records}
    assert by_seq[1].request == "create"
    assert by_seq[1].failed  # expected 201, got 200
    assert by_seq[0].ok


def test_run_is_bounded_by_duration() -> None:
    started = time.monotonic()
    w = probe(FakeTarget(side_by_seq), rate=200).run(count=100_000, duration=0.25)
    assert time.monotonic() - started < 2
    assert 45 <= w.count <= 51  # 200 req/s for 0.25 s: requests scheduled at 0, 5, ..., 245 ms


def test_requests_are_sent_on_schedule_at_a_fixed_rate() -> None:
    w = probe(FakeTarget(side_by_seq), rate=500).run(count=250, duration=5)
    scheduled = sorted(r.scheduled for r in w.records)
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    assert min(gaps) == pytest.approx(0.002, abs=1e-6) and max(gaps) == pytest.approx(0.002, abs=1e-6)
    assert w.lag_p99_ms is not None and w.lag_p99_ms < 200  # generous: CI shares 2 cores


def test_a_stall_shows_as_latency_not_as_missing_samples() -> None:
    """Serial target stalls 300 ms on request 20: the ~30 requests scheduled meanwhile wait, and
    their latency (from the scheduled time) shows it. A closed loop would show one slow request."""
    target = FakeTarget(side_by_seq, delay=lambda n: 0.3 if n == 20 else 0.0, serial=True)
    w = probe(target, rate=100).run(count=80, duration=5)
    assert w.count == 80
    slow = [r for r in w.records if r.latency_ms > 100]
    assert len(slow) >= 20, sorted(r.latency_ms for r in w.records)[-5:]
    stalled = next(r for r in w.records if r.seq == 21)
    assert stalled.latency_ms > 200  # waited for request 20 though scheduled 10 ms after it


def test_attribution_by_splitter_header_then_kong_version() -> None:
    versions = {"3.4.2": "x", "3.9.1": "y"}
    assert attribute({"x-kuh-side": "Y", "x-kuh-upstream": "y2"}, versions) == ("y", "y2")
    assert attribute({"via": "1.1 kong/3.9.1"}, versions) == ("y", None)
    assert attribute({"via": "kong/3.4.2"}, versions) == ("x", None)
    assert attribute({"via": "1.1 upstream, 1.1 kong/3.9.1"}, versions) == ("y", None)
    assert attribute({"server": "kong/3.4.2"}, versions) == ("x", None)
    assert attribute({"server": "kong/3.7.0"}, versions) == (None, None)
    assert attribute({"server": "openresty"}, versions) == (None, None)
    assert attribute({"via": "1.1 kong/3.9.1"}, None) == (None, None)


def test_window_figures_per_side() -> None:
    def answer(n: int, *_: object) -> Answer:
        if n % 10 == 0:
            return 502, {"via": "1.1 kong/3.9.1"}  # Y, failing
        if n % 10 == 1:
            return 200, {}                          # nobody can tell who answered
        return 200, {"via": "kong/3.4.2"}

    w = probe(FakeTarget(answer), rate=1000, version_sides={"3.4.2": "x", "3.9.1": "y"}).run(
        count=100, duration=5)
    assert (w.count, w.x.count, w.y.count, w.unattributed, w.probe_errors) == (100, 80, 10, 10, 0)
    assert w.y.failed == 10 and w.y.error_rate == 1.0
    assert w.x.failed == 0 and w.x.error_rate == 0.0
    assert w.share_y == pytest.approx(10 / 90)
    assert w.probe_error_rate == pytest.approx(0.1)
    assert dict(w.y.statuses) == {502: 10}
    assert w.x.p50_ms is not None and w.x.p50_ms <= w.x.p99_ms  # type: ignore[operator]


def test_probe_errors_are_counted_apart_from_http_failures() -> None:
    def answer(n: int, *_: object) -> Answer:
        if n % 5 == 0:
            raise ProbeTransportError("connect", "refused")
        if n % 5 == 1:
            raise ProbeTransportError("timeout")
        return 503, {"x-kuh-side": "x"}

    w = probe(FakeTarget(answer), rate=1000).run(count=50, duration=5)
    assert w.probe_errors == 20
    assert {r.error for r in w.records if r.probe_error} == {"connect", "timeout"}
    assert w.x.count == 30 and w.x.failed == 30
    assert all(r.status is None and not r.failed for r in w.records if r.probe_error)


def test_requests_still_unanswered_at_the_end_are_recorded_not_dropped() -> None:
    target = FakeTarget(side_by_seq, delay=lambda n: 30.0 if n == 3 else 0.0)
    started = time.monotonic()
    w = probe(target, rate=100, timeout=0.1).run(count=5, duration=5)
    assert time.monotonic() - started < 5
    assert w.count == 5
    stuck = next(r for r in w.records if r.seq == 3)
    assert stuck.error == "cancelled" and stuck.probe_error
    assert w.probe_errors == 1


def test_window_keeps_only_requests_sent_after_a_change() -> None:
    w = probe(FakeTarget(side_by_seq), rate=1000).run(count=100, duration=5)
    cut = sorted(r.sent for r in w.records)[60]
    later = w.sent_after(cut)
    assert later.count == 40 and all(r.sent >= cut for r in later.records)


def test_pin_y_sends_the_pin_header_on_every_request() -> None:
    target = FakeTarget(side_by_seq)
    w = probe(target, [ProbeRequest(headers={"apikey": "k"})], rate=1000, pin_y=True).run(count=5, duration=5)
    assert all(headers.get("X-KUH-Pin") == "y" and headers["apikey"] == "k" for _, _, headers in target.calls)
    assert all(r.pinned for r in w.records)


def test_csv_export_has_no_credentials(tmp_path: Path) -> None:
    mix = [
        ProbeRequest(path="/orders", headers={"apikey": "s3cret-header-key"}, name="orders with key"),
        ProbeRequest(path="/orders?apikey=s3cret-query-key&page=2", expect_status=200),
    ]
    w = probe(FakeTarget(side_by_seq), mix, rate=1000).run(count=10, duration=5)
    path = w.to_csv(tmp_path / "evidence" / "probe.csv")
    text = path.read_text()
    assert "s3cret" not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 10
    assert {r["path"] for r in rows} == {"/orders", "/orders?apikey=***&page=***"}
    assert rows[0]["side"] in ("x", "y") and rows[0]["status"] == "200"
    assert safe_path("/plain") == "/plain"


def test_background_mode_windows_and_cursor() -> None:
    p = probe(FakeTarget(side_by_seq), rate=400)
    p.start(count=10_000, duration=10)
    try:
        assert p.running
        cursor = p.completed
        time.sleep(0.25)
        first = p.take_window(label="one", weights=(75, 25))
        time.sleep(0.25)
        later, cursor2 = p.records_after(cursor)
        assert cursor2 > cursor and len(later) == cursor2 - cursor
    finally:
        last = p.stop(label="two")
    assert not p.running
    assert first.label == "one" and first.weights == (75, 25) and first.count > 50
    assert last.count > 50
    seqs = [r.seq for r in first.records] + [r.seq for r in last.records]
    assert len(seqs) == len(set(seqs))  # no record in two windows
    assert first.share_y == pytest.approx(0.25, abs=0.03)


def test_the_probe_refuses_nonsense() -> None:
    with pytest.raises(ProbeError, match="at least one"):
        Probe("http://127.0.0.1:9", [], rate=10)
    with pytest.raises(ProbeError, match="rate"):
        Probe("http://127.0.0.1:9", [ProbeRequest()], rate=0)
    with pytest.raises(ProbeError, match="http"):
        Probe("127.0.0.1:9", [ProbeRequest()], rate=10)
    with pytest.raises(ProbeError, match="must start with '/'"):
        ProbeRequest(path="orders")
    with pytest.raises(ProbeError, match="positive count"):
        probe(FakeTarget(side_by_seq), rate=10).run(count=0, duration=1)


def test_a_window_of_nothing() -> None:
    w = ProbeWindow.of([])
    assert (w.count, w.share_y, w.probe_error_rate, w.x.p99_ms) == (0, None, None, None)


# --- splitter weight arithmetic (what makes the shares follow the percentages) ---------------------

def backends(n_x: int, n_y: int) -> list[Backend]:
    return [Backend(f"x{i}", "x", "127.0.0.1", 8000 + i) for i in range(n_x)] + [
        Backend(f"y{i}", "y", "127.0.0.1", 9000 + i) for i in range(n_y)
    ]


@pytest.mark.parametrize(("n_x", "n_y"), [(1, 1), (3, 1), (1, 3), (2, 5), (10, 1)])
@pytest.mark.parametrize("y", [0, 1, 5, 25, 33, 50, 75, 99, 100])
def test_server_weights_give_each_side_its_share(n_x: int, n_y: int, y: int) -> None:
    bs = backends(n_x, n_y)
    weights = server_weights(bs, 100 - y, y)
    assert all(0 <= w <= 256 for w in weights.values())
    total_y = sum(weights[b.name] for b in bs if b.side == "y")
    share = 100 * total_y / sum(weights.values())
    assert share == pytest.approx(y, abs=0.5)
    for side, pct in (("x", 100 - y), ("y", y)):
        side_weights = [weights[b.name] for b in bs if b.side == side]
        assert (sum(side_weights) > 0) == (pct > 0)
        assert max(side_weights) - min(side_weights) <= 1  # spread evenly over the side
    if 0 < y < 100 and (n_x, n_y, y) != (10, 1, 99):
        assert all(weights[b.name] >= 1 for b in bs)  # nobody on a live side is left out
    assert split_from_server_weights(bs, weights) == (100 - y, y)


def test_weights_are_checked() -> None:
    with pytest.raises(TrafficError, match="sum to 101"):
        check_weights(51, 50)
    with pytest.raises(TrafficError, match="integer percentage"):
        check_weights(100.0, 0)  # type: ignore[arg-type]
    with pytest.raises(TrafficError, match="none on y"):
        check_backends(backends(2, 0))
    with pytest.raises(TrafficError, match="share the address"):
        check_backends([Backend("x1", "x", "127.0.0.1", 1), Backend("y1", "y", "127.0.0.1", 1)])
    with pytest.raises(TrafficError, match="not usable"):
        Backend("x 1", "x", "127.0.0.1", 1)


# --- the splitter registry and the command splitter (no balancer needed) --------------------------

@pytest.mark.parametrize("kind", ["haproxy", "nginx", "command"])
def test_every_registered_splitter_builds_lazily_and_meets_the_protocol(kind: str, tmp_path: Path) -> None:
    from harness.traffic import SPLITTERS, Splitter, get_splitter

    assert kind in SPLITTERS
    kwargs: dict[str, Any] = {"backends": backends(1, 1), "run_dir": tmp_path}
    if kind == "command":
        kwargs.update(set_command="true {x} {y}", listen_url="http://127.0.0.1:9")
    s = get_splitter(kind, **kwargs)
    assert isinstance(s, Splitter)
    assert s.kind == kind
    assert s.listen_url.startswith("http://127.0.0.1:")


def test_command_splitter_fills_placeholders_per_argument_without_a_shell(tmp_path: Path) -> None:
    from harness.traffic.command import CommandSplitter

    out = tmp_path / "args"
    s = CommandSplitter(f"sh -c 'echo \"$@\" > {out}' set {{x}} '{{y}}; rm -rf /'",
                        listen_url="http://127.0.0.1:9")
    s.set_weights(95, 5)
    assert out.read_text().strip() == "95 5; rm -rf /"  # one argument, never shell syntax
    assert s.weights() == (95, 5) and "last set" in s.weights_source


def test_command_splitter_timeout_and_missing_program(tmp_path: Path) -> None:
    from harness.traffic.command import CommandSplitter

    slow = CommandSplitter("sleep 5 {x} {y}", listen_url="http://127.0.0.1:9", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(TrafficError, match=r"did not finish within 0\.2s"):
        slow.set_weights(50, 50)
    assert time.monotonic() - started < 3
    missing = CommandSplitter("no-such-program-kuh {x} {y}", listen_url="http://127.0.0.1:9")
    with pytest.raises(TrafficError, match="could not be run"):
        missing.set_weights(50, 50)
    with pytest.raises(TrafficError, match="no drain command"):
        missing.drain("x1")
    with pytest.raises(TrafficError, match="no get_weights command and no weights were set"):
        missing.weights()
