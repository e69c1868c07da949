"""Differential requests: the same corpus to X and to Y, comparing what clients and upstreams saw.

A response Kong proxied is compared on status, what the upstream received (method, path, query,
body, headers less the volatile ones) and the body. A response Kong generated itself (401, 404)
is compared against what each side's version is known to send (harness.behaviour), so a message
that changed between versions by design is a known difference, not a defect.

Requests go out concurrently (:func:`run_bounded`: a bounded pool of threads sharing one httpx client,
``concurrency`` requests in flight) under one total deadline; what the deadline left unsent is named, not
silently dropped. :func:`compare_nodes` sends each request to a reference node and to the others and
compares them, in corpus order, whatever order the answers came in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from harness.behaviour import VERSION_HEADERS, VOLATILE_UPSTREAM_HEADERS, ExpectedError, header_problems, key_auth_401
from harness.corpus import CorpusRequest, fingerprint
from harness.deadline import Deadline
from harness.errors import NodeUnreachable
from harness.model import Node

T = TypeVar("T")
R = TypeVar("R")

#: one request's own timeout (as the serial checks had): a node that answers nothing within it is unreachable
REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Observation:
    """What one node answered to one corpus request."""

    status: int
    message: str | None                    # Kong's JSON "message" on generated responses
    www_authenticate: str | None
    upstream: Mapping[str, object] | None  # what the echo upstream says it received; None if Kong answered
    body_text: str
    headers: Mapping[str, str] | None = None   # the version-dependent response headers (None: not read)


@dataclass(frozen=True)
class Difference:
    request: str
    field: str
    x: str
    y: str
    note: str = ""

    def render(self) -> str:
        line = f"{self.request}: {self.field}: X={self.x} | Y={self.y}"
        return f"{line} ({self.note})" if self.note else line


def observe(client: httpx.Client, base_url: str, req: CorpusRequest, *, where: str,
            timeout: float | None = None) -> Observation:
    """Send one corpus request to ``base_url`` and read the answer (``timeout``: this request's, in seconds)."""
    try:
        resp = client.request(req.method, base_url.rstrip("/") + req.path, headers=req.header_dict(),
                              timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
    except httpx.TransportError as exc:
        raise NodeUnreachable(
            f"{where}: {req.method} {req.path} ({req.name}) got no answer: {type(exc).__name__}: {exc}",
            hint="check the node's proxy listener and its log",
        ) from exc
    text = resp.text
    data: object = None
    with suppress(ValueError):
        data = resp.json()
    upstream = data if isinstance(data, dict) and {"method", "path", "headers"} <= data.keys() else None
    message = data.get("message") if isinstance(data, dict) and upstream is None else None
    headers = {name: resp.headers[name] for name in VERSION_HEADERS if name in resp.headers}
    return Observation(resp.status_code, message, resp.headers.get("www-authenticate"), upstream, text, headers)


def expected_for(req: CorpusRequest, version: str) -> ExpectedError | None:
    """The Kong-generated answer a version gives to this request, when it is one."""
    if req.auth == "missing" and req.key_auth and not req.key_auth.anonymous:
        return key_auth_401(version, "missing", req.key_auth.realm)
    if req.auth == "invalid" and req.key_auth and not req.key_auth.anonymous:
        return key_auth_401(version, "invalid", req.key_auth.realm)
    return None


def _upstream_headers(upstream: Mapping[str, object] | None) -> Mapping[object, object]:
    """The headers the echo upstream says it received (its ``headers`` object; none when absent)."""
    headers = (upstream or {}).get("headers")
    return headers if isinstance(headers, Mapping) else {}


def _upstream_view(upstream: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """What the upstream received (method, path, query, body) and its headers less the volatile ones."""
    headers = {
        str(k).lower(): v
        for k, v in _upstream_headers(upstream).items()
        if str(k).lower() not in VOLATILE_UPSTREAM_HEADERS
    }
    return {key: upstream.get(key) for key in ("method", "path", "query", "body")}, headers


class _Redact:
    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first: a secret that contains another must not leave its tail behind
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def hide(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, f"<{fingerprint(s)}>")
        return text

    def __call__(self, value: object) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return self.hide(text)[:300]


def compare(
    req: CorpusRequest,
    x: Observation,
    y: Observation,
    *,
    x_version: str,
    y_version: str,
    secrets: Iterable[str] = (),
) -> list[Difference]:
    """The differences between X's and Y's answers that their versions do not explain."""
    r = _Redact(secrets)
    out: list[Difference] = []
    if x.status != y.status:
        out.append(Difference(req.name, "status", str(x.status), str(y.status)))
        return out
    for side, obs, ver in (("X", x, x_version), ("Y", y, y_version)):
        if obs.headers is None or not ver or (obs.upstream is None and obs.status >= 500):
            continue   # not read, an unknown version, or a 5xx: nothing to hold the headers to
        seen = {str(k).lower(): str(v) for k, v in _upstream_headers(obs.upstream).items()}
        for problem in header_problems(ver, obs.headers, seen if obs.upstream is not None else None):
            out.append(Difference(req.name, f"{side} headers ({ver})", problem if side == "X" else "-",
                                  problem if side == "Y" else "-", "version-dependent headers (KONG-FACTS §6.3)"))
    exp_x, exp_y = expected_for(req, x_version), expected_for(req, y_version)
    if exp_x and exp_y:
        for side, obs, exp, ver in (("X", x, exp_x, x_version), ("Y", y, exp_y, y_version)):
            if obs.message != exp.message or (obs.www_authenticate or None) != exp.www_authenticate:
                out.append(
                    Difference(
                        req.name, f"{side} key-auth answer",
                        r(x.message if side == "X" else exp_x.message),
                        r(y.message if side == "Y" else exp_y.message),
                        r.hide(f"{side} ({ver}) should send message {exp.message!r} and WWW-Authenticate "
                               f"{exp.www_authenticate!r}; sent {obs.message!r} / {obs.www_authenticate!r}"),
                    )
                )
        return out
    if x.upstream is not None or y.upstream is not None:
        if x.upstream is None or y.upstream is None:
            out.append(Difference(req.name, "proxied", str(x.upstream is not None), str(y.upstream is not None)))
            return out
        (ux, hx), (uy, hy) = _upstream_view(x.upstream), _upstream_view(y.upstream)
        for key in ("method", "path", "query", "body"):
            if ux[key] != uy[key]:
                out.append(Difference(req.name, f"upstream {key}", r(ux[key]), r(uy[key])))
        for name in sorted(set(hx) | set(hy)):
            if hx.get(name) != hy.get(name):
                out.append(Difference(req.name, f"upstream header {name}", r(hx.get(name)), r(hy.get(name))))
        return out
    if x.message != y.message:
        out.append(Difference(req.name, "message", r(x.message), r(y.message)))
    return out


# --- sending many requests: a bounded pool under one deadline --------------------------------------

#: a batch's total deadline: a base, plus an allowance per request (per node it goes to) for each request in
#: flight. Measured with ``python -m benchmarks.differential`` (55,000-entity config, emulator pair 3.8.1 ->
#: 3.9.1 on 2 cores shared with other work): 5,000 requests to X and Y (10,000 answers) took 11.8-15.7 s at
#: 1-16 in flight (CPU-bound: ~1.3 ms per answer); with 5 ms added per answer, 79.7 s serial, 14.9 s at 8.
#: The default (8 in flight) then allows 30 + 0.2 x 10,000 / 8 = 280 s: about 20 times the measured time,
#: and enough for a node or upstream answering in 150 ms on average; a node hanging every request is
#: reported after minutes, not the 104 minutes its 5 s timeouts would add up to.
BATCH_BASE_S = 30.0
BATCH_PER_REQUEST_S = 0.2


def batch_seconds(requests: int, *, concurrency: int) -> float:
    """The total deadline for ``requests`` (each counted per node it goes to) with ``concurrency`` in flight."""
    return BATCH_BASE_S + BATCH_PER_REQUEST_S * max(0, requests) / max(1, concurrency)


@dataclass(frozen=True)
class Batch(Generic[R]):
    """The results of :func:`run_bounded`, in the items' order; ``None`` where an item was not done."""

    results: tuple[R | None, ...]
    not_sent: tuple[int, ...]   # indices of the items the deadline left undone (not started, or cut short)
    seconds: float


class _OutOfTime(Exception):
    """The batch's deadline left no time for the next request."""


def request_timeout(deadline: Deadline) -> float:
    """This request's timeout: its own, but never past the batch's deadline (raises _OutOfTime at 0)."""
    left = deadline.remaining()
    if left <= 0:
        raise _OutOfTime
    return min(REQUEST_TIMEOUT_S, left)


def run_bounded(items: Sequence[T], work: Callable[[T], R], *, concurrency: int, deadline: Deadline) -> Batch[R]:
    """``work`` on every item, ``concurrency`` at a time, started in order until ``deadline`` passes.

    An item whose work has not started when the deadline passes, or whose request was cut short by it, is
    listed in ``not_sent``. The first error ``work`` raises (by item order) stops further starts and is
    raised once the items in flight are done; an interrupt stops further starts too.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    started = time.monotonic()
    results: list[R | None] = [None] * len(items)
    not_sent: set[int] = set()
    errors: dict[int, BaseException] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def task(i: int) -> None:
        if stop.is_set() or deadline.expired:
            with lock:
                not_sent.add(i)
            return
        try:
            results[i] = work(items[i])
        except _OutOfTime:
            with lock:
                not_sent.add(i)
        except Exception as exc:
            with lock:
                if deadline.expired:    # a request cut short by the batch's deadline: not sent, not a fault
                    not_sent.add(i)
                else:
                    errors[i] = exc
                    stop.set()

    if concurrency == 1 or len(items) <= 1:
        for i in range(len(items)):
            task(i)
    else:
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="kuh-batch")
        try:
            for future in [pool.submit(task, i) for i in range(len(items))]:
                future.result()
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[min(errors)]
    return Batch(tuple(results), tuple(sorted(not_sent)), time.monotonic() - started)


def shared_client(concurrency: int, hosts: int = 2) -> httpx.Client:
    """One client for a batch: keep-alive connections enough for ``concurrency`` to each of ``hosts`` nodes."""
    size = max(1, concurrency) * max(1, hosts)
    return httpx.Client(timeout=REQUEST_TIMEOUT_S, follow_redirects=False,
                        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))


@dataclass(frozen=True)
class Target:
    """A node's proxy as the differential sends to it: its URL, its name in messages, its version."""

    url: str
    where: str
    version: str

    @classmethod
    def of(cls, node: Node) -> Target:
        return cls(node.proxy_url or "", str(node), node.version or "")


@dataclass(frozen=True)
class NodeComparison:
    """The corpus sent to a reference node and to others: what each other node answered differently."""

    compared: int                                        # requests answered by every node
    differences: tuple[tuple[Target, Difference], ...]   # (the other node, the difference), in corpus order
    not_sent: tuple[str, ...]                            # request names the deadline left unsent
    seconds: float
    deadline_seconds: float
    concurrency: int


def compare_nodes(requests: Sequence[CorpusRequest], reference: Target, others: Sequence[Target], *,
                  secrets: Iterable[str] = (), concurrency: int = 8, deadline_seconds: float | None = None,
                  what: str = "differential requests", client: httpx.Client | None = None) -> NodeComparison:
    """Each request to ``reference`` and then to each of ``others``, ``concurrency`` requests in flight, all
    within one deadline (default :func:`batch_seconds`); X's answer read once, compared with each other's."""
    secrets = tuple(secrets)
    seconds = deadline_seconds if deadline_seconds is not None else batch_seconds(
        len(requests) * (1 + len(others)), concurrency=concurrency)
    deadline = Deadline.start(seconds, what=what, where=f"{reference.where} and {len(others)} other node(s)",
                              hint="raise differential.concurrency, lower differential.budget, or look at the "
                                   "slow node's log")

    def one(req: CorpusRequest) -> list[tuple[Target, Difference]]:
        ref = observe(http, reference.url, req, where=reference.where, timeout=request_timeout(deadline))
        found: list[tuple[Target, Difference]] = []
        for other in others:
            obs = observe(http, other.url, req, where=other.where, timeout=request_timeout(deadline))
            found += [(other, d) for d in compare(req, ref, obs, x_version=reference.version,
                                                  y_version=other.version, secrets=secrets)]
        return found

    http = client or shared_client(concurrency, 1 + len(others))
    try:
        batch = run_bounded(requests, one, concurrency=concurrency, deadline=deadline)
    finally:
        if client is None:
            http.close()
    diffs = tuple(d for found in batch.results if found for d in found)
    return NodeComparison(len(requests) - len(batch.not_sent), diffs,
                          tuple(requests[i].name for i in batch.not_sent), batch.seconds, seconds, concurrency)
