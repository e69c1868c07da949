"""harness.admin against hostile nodes: a fake node on 127.0.0.1 that drips, floods, loops and lies, and a
Hypothesis fuzz of arbitrary answers through httpx.MockTransport.

What is held: the client never hangs past its deadline (judged with a generous margin, so these tests are
not timing-sensitive: the bound is seconds, a hang is forever), never holds more than its size cap in
memory (tracemalloc's peak), and always raises a HarnessError that names the problem, never another
exception.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import socketserver
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from harness.admin import AdminClient, ConfigLoad, DataPlane, NodeInfo, ReadOnlyAdmin, StatusClient
from harness.deadline import CallBudget, Deadline, MiB
from harness.errors import (
    AdminAPIError,
    AnswerTooLarge,
    BadResponse,
    DeadlineExceeded,
    HarnessError,
    NodeTooSlow,
    NodeUnreachable,
)

#: every call's total deadline in these tests (the budget's base; nothing is sent, so no per-MiB part)
DEADLINE = 1.0
#: how far past its deadline a call may return before the test calls it a hang: generous on purpose
MARGIN = 4.0
#: the answer size cap in these tests
CAP = 1 * MiB

Behaviour = Callable[[socket.socket, "Request"], None]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]


# ---------------------------------------------------------------------------------------------------
# the fake node: a small threaded TCP server that answers each path with one hostile behaviour


@dataclass
class FakeNode:
    """A threaded server on 127.0.0.1 whose answers are behaviours keyed by path (raw bytes on the socket)."""

    routes: dict[str, Behaviour]
    stopping: threading.Event = field(default_factory=threading.Event)
    seen: list[Request] = field(default_factory=list)
    server: socketserver.ThreadingTCPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeNode:
        node = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                request = read_head(sock)
                if request is None:
                    return
                node.seen.append(request)
                behaviour = node.routes.get(request.path, not_found)
                with contextlib.suppress(OSError):     # the client gave up (that is the point)
                    behaviour(sock, request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-node", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def read_head(sock: socket.socket) -> Request | None:
    """The request line and headers (the body, if any, is left unread: some behaviours never read it)."""
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    line, *rest = head.split("\r\n")
    method, target, _ = line.split(" ", 2)
    path, _, query = target.partition("?")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in rest if ":" in h)}
    return Request(method, path, query, headers)


def answer(sock: socket.socket, status: int, body: bytes, *, content_type: str = "application/json",
           extra: str = "") -> None:
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")
    sock.sendall(head.encode() + body)


def not_found(sock: socket.socket, request: Request) -> None:
    answer(sock, 404, b'{"message":"Not found"}')


def sleep_unless_stopping(node: FakeNode, seconds: float) -> bool:
    return not node.stopping.wait(seconds)


@pytest.fixture()
def node() -> Iterator[FakeNode]:
    """A fake node with no routes yet (each test adds its behaviours); stopped by its handle."""
    fake = FakeNode({}).start()
    yield fake
    fake.stop()


def client(url: str, **kw: object) -> AdminClient:
    options: dict[str, object] = {"timeout": DEADLINE, "retries": 1, "retry_cap": 0.05, "max_bytes": CAP}
    options.update(kw)
    return AdminClient(url, **options)  # type: ignore[arg-type]


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    """Run a call that must fail; its exception and how long it took."""
    started = time.monotonic()
    with pytest.raises(HarnessError) as info:
        call()
    return info.value, time.monotonic() - started


# ---------------------------------------------------------------------------------------------------
# behaviours


def drip_body(node: FakeNode) -> Behaviour:
    """Headers at once, then the body one byte a second (httpx's per-read timeout never trips)."""
    def behaviour(sock: socket.socket, request: Request) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while sleep_unless_stopping(node, 0.2):
            sock.sendall(b" ")
    return behaviour


def drip_headers(node: FakeNode) -> Behaviour:
    """The status line, then one header byte every 0.2 s: the answer's headers never end."""
    def behaviour(sock: socket.socket, request: Request) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while sleep_unless_stopping(node, 0.2):
            sock.sendall(b"a")
    return behaviour


def silent(node: FakeNode) -> Behaviour:
    """Accepts, reads the request head, never answers."""
    def behaviour(sock: socket.socket, request: Request) -> None:
        node.stopping.wait(60)
    return behaviour


def flood(node: FakeNode, *, announce: bool, encoding: str | None = None) -> Behaviour:
    """A body far over the cap: announced by Content-Length, or chunked without end (or a gzip bomb)."""
    block = b"x" * 65536
    bomb = gzip.compress(b"\0" * (64 * MiB), compresslevel=9) if encoding == "gzip" else b""

    def behaviour(sock: socket.socket, request: Request) -> None:
        if encoding == "gzip":
            answer(sock, 200, bomb, extra="Content-Encoding: gzip\r\n")
            return
        if announce:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 10737418240\r\n\r\n")
            while not node.stopping.is_set():
                sock.sendall(block)
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % len(block) + block + b"\r\n"
        while not node.stopping.is_set():
            sock.sendall(chunk)
    return behaviour


def cut_mid_body(sock: socket.socket, request: Request) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                 b'{"version": "3.')
    sock.shutdown(socket.SHUT_RDWR)


def redirect_loop(sock: socket.socket, request: Request) -> None:
    answer(sock, 302, b"", content_type="text/html", extra=f"Location: {request.path}\r\n")


def endless_pages(distinct_ids: bool) -> Behaviour:
    counter = iter(range(10**9))

    def behaviour(sock: socket.socket, request: Request) -> None:
        n = next(counter)
        entity = {"id": f"id-{n}" if distinct_ids else "id-0", "name": f"svc-{n}"}
        body = {"data": [entity], "next": f"/services?offset=o{n}", "offset": f"o{n}"}
        answer(sock, 200, json.dumps(body).encode())
    return behaviour


def empty_pages() -> Behaviour:
    counter = iter(range(10**9))

    def behaviour(sock: socket.socket, request: Request) -> None:
        answer(sock, 200, json.dumps({"data": [], "next": f"/services?offset=e{next(counter)}"}).encode())
    return behaviour


def off_node_next(sock: socket.socket, request: Request) -> None:
    body = {"data": [{"id": "a"}], "next": "http://attacker.invalid:8001/services?offset=steal"}
    answer(sock, 200, json.dumps(body).encode())


def body(content: bytes, *, status: int = 200, content_type: str = "application/json") -> Behaviour:
    def behaviour(sock: socket.socket, request: Request) -> None:
        answer(sock, status, content, content_type=content_type)
    return behaviour


ALIAS_BOMB = "\n".join(
    ['_format_version: "3.0"', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["services: [*i]"]) + "\n"


# ---------------------------------------------------------------------------------------------------
# never past the deadline


@pytest.mark.parametrize(("name", "make"), [
    ("body one byte at a time", drip_body),
    ("headers one byte at a time", drip_headers),
    ("never answers", silent),
])
def test_a_slow_node_is_cut_off_at_the_deadline(node: FakeNode, name: str,
                                                make: Callable[[FakeNode], Behaviour]) -> None:
    node.routes["/"] = make(node)
    error, took = timed(lambda: client(node.url, retries=0).root())
    assert isinstance(error, NodeTooSlow) and isinstance(error, NodeUnreachable)
    assert isinstance(error, DeadlineExceeded) and error.seconds == pytest.approx(DEADLINE, abs=0.01)
    assert took < DEADLINE + MARGIN, f"{name}: {took:.1f}s"
    text = str(error)
    assert "GET" in text and node.url in text and "deadline" in text and "next step" in text


def test_retries_share_the_one_deadline(node: FakeNode) -> None:
    """Three attempts against a silent node end together at the call's deadline, not three deadlines later."""
    node.routes["/"] = silent(node)
    error, took = timed(lambda: client(node.url, retries=3).root())
    assert isinstance(error, NodeTooSlow)
    assert took < DEADLINE + MARGIN


def test_the_status_client_is_bounded_too(node: FakeNode) -> None:
    node.routes["/status"] = drip_body(node)
    status = StatusClient(node.url, timeout=DEADLINE, retries=0)
    error, took = timed(status.status)
    assert isinstance(error, NodeTooSlow) and took < DEADLINE + MARGIN


def test_get_config_from_a_dripping_node_stops_at_its_budget(node: FakeNode) -> None:
    """GET /config gets time for the answer size it expects before its headers; not more."""
    node.routes["/config"] = drip_body(node)
    budget = CallBudget(base=0.5, per_mib=1.0, cap=30)
    error, took = timed(lambda: client(node.url, budget=budget, retries=0).config(expect_bytes=MiB // 2))
    assert isinstance(error, NodeTooSlow) and error.seconds == pytest.approx(1.0, abs=0.01)
    assert took < 1.0 + MARGIN


# ---------------------------------------------------------------------------------------------------
# never over the size cap


@pytest.mark.parametrize(("name", "make"), [
    ("announced 10 GiB", lambda n: flood(n, announce=True)),
    ("chunked without end", lambda n: flood(n, announce=False)),
    ("gzip bomb: 64 MiB of zeros in 64 KiB", lambda n: flood(n, announce=False, encoding="gzip")),
])
def test_an_answer_over_the_cap_is_refused_without_holding_it(node: FakeNode, name: str,
                                                              make: Callable[[FakeNode], Behaviour]) -> None:
    node.routes["/config"] = make(node)
    admin = client(node.url, retries=0)
    tracemalloc.start()
    try:
        error, _ = timed(admin.config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, AnswerTooLarge), f"{name}: {error!r}"
    assert f"{CAP:,} bytes" in str(error) and "max_bytes" in str(error)
    assert peak < 3 * CAP, f"{name}: peak {peak / MiB:.1f} MiB with a {CAP / MiB:.0f} MiB cap"


def test_the_default_cap_fits_a_large_config_and_is_settable() -> None:
    from harness.admin import MAX_ANSWER_BYTES

    default = MAX_ANSWER_BYTES
    assert default >= 64 * MiB          # room for the 55,000-entity config's largest answer
    big = json.dumps({"config": "x" * (2 * MiB)}).encode()
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=big))
    with pytest.raises(AnswerTooLarge):
        AdminClient("http://127.0.0.1:9", transport=transport, max_bytes=MiB).root()
    with pytest.raises(BadResponse, match="has no version"):
        AdminClient("http://127.0.0.1:9", transport=transport).root()


# ---------------------------------------------------------------------------------------------------
# pagination that never ends


def test_endless_pages_with_distinct_offsets_stop_at_the_listing_deadline_with_progress(node: FakeNode) -> None:
    node.routes["/services"] = endless_pages(distinct_ids=True)
    progress: list[tuple[int, int]] = []
    listing = Deadline.start(1.5, what="listing services", where=node.url)
    error, took = timed(lambda: client(node.url).list("services", deadline=listing,
                                                      on_progress=lambda p, e: progress.append((p, e))))
    assert isinstance(error, NodeTooSlow) and took < 1.5 + MARGIN
    pages, entities = progress[-1]
    assert pages > 1 and progress == [(i, i) for i in range(1, pages + 1)]
    assert f"after {pages:,} pages and {entities:,} entities" in str(error)


def test_endless_pages_that_repeat_entities_are_a_loop(node: FakeNode) -> None:
    node.routes["/services"] = endless_pages(distinct_ids=False)
    with pytest.raises(BadResponse, match=r"page 2 repeats entity 'id-0'.*loops"):
        client(node.url).list("services")
    assert len(node.seen) == 2


def test_endless_empty_pages_are_refused(node: FakeNode) -> None:
    node.routes["/services"] = empty_pages()
    with pytest.raises(BadResponse, match="10 pages in a row without an entity"):
        client(node.url).list("services")
    assert len(node.seen) == 10


def test_a_next_page_on_another_host_is_never_followed(node: FakeNode) -> None:
    node.routes["/services"] = off_node_next
    with pytest.raises(BadResponse, match="not on this node"):
        client(node.url, token="t0ken").list("services")
    assert len(node.seen) == 1


# ---------------------------------------------------------------------------------------------------
# lies: garbage, wrong types, redirects, cut connections, YAML bombs


@pytest.mark.parametrize(("name", "behaviour", "error", "words"), [
    ("truncated JSON", body(b'{"version": "3.8.1", "plug'), BadResponse, "not JSON"),
    ("deep nesting", body(b"[" * 200_000), BadResponse, "not JSON"),
    ("binary", body(bytes(range(256)) * 4, content_type="application/octet-stream"), BadResponse,
     "application/octet-stream"),
    ("a 5,000-digit number", body(b"9" * 5000), BadResponse, "not JSON"),
    ("HTML from a proxy port", body(b"<html>hi</html>", content_type="text/html"), BadResponse, "text/html"),
    ("JSON of the wrong shape", body(b"[1, 2, 3]"), BadResponse, "wrong shape"),
    ("a bogus charset", body(b'{"a": 1}', content_type="application/json; charset=klingon"), BadResponse,
     "has no version"),
    ("a redirect loop", redirect_loop, BadResponse, "redirect"),
    ("closed mid-body", cut_mid_body, NodeUnreachable, "connection closed after 15 of 1,000 bytes"),
    ("an error with 1 MB of message", body(json.dumps({"message": "m" * 1_000_000}).encode(), status=500),
     AdminAPIError, "answered 500"),
])
def test_garbage_answers_raise_a_harness_error_that_names_them(
        node: FakeNode, name: str, behaviour: Behaviour, error: type[HarnessError], words: str) -> None:
    node.routes["/"] = behaviour
    with pytest.raises(error) as info:
        client(node.url).root()
    assert words in str(info.value), name
    assert len(str(info.value)) < 2000, "an error message quotes a bounded part of the answer"


def test_honest_answers_in_gzip_or_chunks_still_read_whole(node: FakeNode) -> None:
    """The stream reader and its bounded gzip decoder give back what an ordinary client would."""
    root = json.dumps({"version": "3.8.1", "configuration": {"database": "off"}}).encode()

    def gzipped(sock: socket.socket, request: Request) -> None:
        answer(sock, 200, gzip.compress(root), extra="Content-Encoding: gzip\r\n")

    def chunked(sock: socket.socket, request: Request) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(root), 7):
            part = root[i:i + 7]
            sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        sock.sendall(b"0\r\n\r\n")

    node.routes["/"] = gzipped
    assert client(node.url).root().mode == "dbless"
    node.routes["/"] = chunked
    assert client(node.url).root().version == "3.8.1"


def test_a_redirect_is_not_followed(node: FakeNode) -> None:
    node.routes["/"] = redirect_loop
    with pytest.raises(BadResponse, match="302, a redirect to '/'"):
        client(node.url).root()
    assert len(node.seen) == 1


def test_a_yaml_alias_bomb_in_get_config_is_refused_at_once(node: FakeNode) -> None:
    node.routes["/config"] = body(json.dumps({"config": ALIAS_BOMB}).encode())
    tracemalloc.start()
    try:
        with pytest.raises(BadResponse, match="refused") as info:
            client(node.url).config()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "next step" in str(info.value) and "GET" in str(info.value)
    assert peak < 8 * MiB


def test_a_post_to_a_node_that_never_reads_it_is_bounded(node: FakeNode) -> None:
    node.routes["/config"] = silent(node)
    admin = client(node.url, budget=CallBudget(base=DEADLINE, per_mib=0.1, cap=DEADLINE + 1))
    error, took = timed(lambda: admin.post_config({"_format_version": "3.0", "blob": "x" * (4 * MiB)}))
    assert isinstance(error, NodeTooSlow) and took < error.seconds + MARGIN
    assert error.seconds == pytest.approx(DEADLINE + 0.4, abs=0.01)    # 4 MiB at 0.1 s/MiB, under the cap


# ---------------------------------------------------------------------------------------------------
# the fuzz: any status, headers and body through MockTransport


FUZZ_EXAMPLES = int(os.environ.get("KUH_FUZZ_EXAMPLES", "60"))
FUZZ_CAP = 64 * 1024

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KONGISH = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from(["3.8.1", "2.8.5", "", "v3"]) | JSON,
    "configuration": st.fixed_dictionaries({}, optional={"database": JSON, "role": JSON}) | JSON,
    "plugins": st.fixed_dictionaries({}, optional={"available_on_server": JSON, "enabled_in_cluster": JSON}),
    "server": JSON,
    "message": st.text(max_size=30) | JSON,
    "code": JSON,
    "data": st.lists(JSON | st.fixed_dictionaries({"id": st.text(max_size=4)}), max_size=3) | JSON,
    "next": st.sampled_from([None, "", "/services?offset=x", "http://elsewhere:1/x", "//evil/x", "?o=1"]) | JSON,
    "config": st.sampled_from(['_format_version: "3.0"\n', "a: [", ALIAS_BOMB, "- 1\n", "{{{"]) | st.text(),
    "labels": JSON,
    "last_seen": JSON,
})
#: what Kong answers to each call: the fuzz's honest answers, so the valid paths are tried too
HONEST: tuple[dict[str, object], ...] = (
    {"version": "3.8.1", "configuration": {"database": "off", "role": "traditional"},
     "plugins": {"available_on_server": {"key-auth": {}}, "enabled_in_cluster": ["key-auth"]}},
    {"server": {"total_requests": 1}, "configuration_hash": "0" * 32},
    {"message": "ready"},
    {"data": [{"id": "a", "name": "s"}], "next": None},
    {"data": [{"id": "dp", "version": "3.8.1", "labels": {"a": "b"}, "last_seen": 1}], "next": None},
    {"config": '_format_version: "3.0"\nservices: []\n'},
)
BODIES = st.one_of(
    st.sampled_from(HONEST).map(lambda v: json.dumps(v).encode()),
    KONGISH.map(lambda v: json.dumps(v).encode()),          # twice: near-Kong answers reach the deeper checks
    st.binary(max_size=200),
    JSON.map(lambda v: json.dumps(v).encode()),
    KONGISH.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda n: b"[" * n, st.integers(0, 50_000)),
    st.integers(FUZZ_CAP - 2, FUZZ_CAP + 2).map(lambda n: b"x" * n),
    st.binary(max_size=100).map(gzip.compress),
)
HEADER_VALUES = st.sampled_from(["application/json", "text/html", "gzip", "deflate", "br", "identity", "0",
                                 "5", "-1", "abc", "1e9", "nan", "/", "http://elsewhere:1/", "chunked",
                                 "application/json; charset=utf-16"])
HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Content-Encoding", "Retry-After", "Location", "Content-Length"]),
    HEADER_VALUES, max_size=4)
STATUSES = st.just(200) | st.sampled_from([200, 201, 204, 301, 302, 304, 400, 401, 404, 405, 413, 429, 500, 502,
                                            503, 504]) | st.integers(200, 599)


def _calls(admin: AdminClient) -> list[Callable[[], object]]:
    return [admin.root, admin.status, admin.ready, admin.config, lambda: admin.list("services"),
            lambda: admin.list("targets"), admin.data_planes, lambda: admin.post_config('_format_version: "3.0"'),
            lambda: admin.read_only().root()]


VALID = (NodeInfo, ConfigLoad, dict, list, tuple)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=STATUSES, headers=HEADERS, content=BODIES, which=st.integers(0, 8))
def test_fuzz_any_answer_gives_a_harness_error_or_a_valid_value(status: int, headers: dict[str, str],
                                                                 content: bytes, which: int) -> None:
    try:
        httpx.Response(status, headers=headers, content=content).read()
    except Exception:
        assume(False)           # not an answer httpx itself can carry (e.g. a gzip header on plain bytes)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=content)

    admin = AdminClient("http://127.0.0.1:8001", transport=httpx.MockTransport(handler), retries=1,
                        sleep=lambda s: None, max_bytes=FUZZ_CAP)
    try:
        value = _calls(admin)[which]()
    except HarnessError as exc:
        event(f"{type(exc).__name__}")
        assert str(exc)                                     # says something
        return
    event(f"a valid {type(value).__name__}")
    assert isinstance(value, VALID)
    if isinstance(value, tuple) and value:
        assert isinstance(value[0], DataPlane | int)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(content=BODIES, status=STATUSES, headers=HEADERS)
def test_fuzz_status_client_and_read_only_view(content: bytes, status: int, headers: dict[str, str]) -> None:
    try:
        httpx.Response(status, headers=headers, content=content).read()
    except Exception:
        assume(False)
    transport = httpx.MockTransport(lambda r: httpx.Response(status, headers=headers, content=content))
    status_api = StatusClient("http://127.0.0.1:8007", transport=transport, retries=0, max_bytes=FUZZ_CAP)
    view = ReadOnlyAdmin("http://127.0.0.1:8001", transport=transport, retries=0, max_bytes=FUZZ_CAP)
    with contextlib.suppress(HarnessError):
        code, message = status_api.ready()
        assert code in (200, 503) and isinstance(message, str)
    with contextlib.suppress(HarnessError):
        assert all(isinstance(plane, DataPlane) for plane in view.data_planes())
