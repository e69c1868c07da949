"""Kong Admin API and Status API clients (httpx), and the read-only view used for cluster X.

- :class:`AdminClient`: reads and writes (writes are used on cluster Y only).
- :class:`ReadOnlyAdmin`: the view for cluster X. It has only read methods, and its transport refuses
  every method but GET/HEAD with :class:`ReadOnlyViolation` before anything is sent.
- :class:`StatusClient`: the Status API (a DP has no Admin API, only ``status_listen``).

Every call is bounded (harness.deadline): a TOTAL deadline per call, from its size (a base plus a
per-MiB allowance for what is sent and what comes back, capped), not httpx's per-read timeout, which a
node answering one byte a second never trips; and a maximum answer size (:data:`MAX_ANSWER_BYTES`,
settable), read as a stream and refused once over, so no answer can hold more than that in memory. A
watchdog shuts the call's socket at its deadline, so even a read blocked on a silent node returns then.
Past its deadline a call raises :class:`NodeTooSlow`; over the size, :class:`AnswerTooLarge`.

Retries are bounded and only for transient failures, and all attempts share the call's one deadline:
connection errors (nothing was sent), and, for GETs, timeouts, answers cut off mid-body and
429/502/503/504, honouring ``Retry-After`` up to a cap. A 4xx is never retried. Redirects are not
followed (Kong's Admin API never redirects): a 3xx is a :class:`BadResponse`. Listing a collection has
its own total deadline, refuses repeated or endless pages, and reports its progress.

The admin token is sent as ``Kong-Admin-Token`` and never appears in a repr, an error or a log line, and
never leaves the node's own host and port: a ``next`` page elsewhere is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import reprlib
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import yaml

from harness.deadline import CallBudget, Deadline, MiB
from harness.errors import (
    AdminAPIError,
    AnswerTooLarge,
    BadResponse,
    NodeTooSlow,
    NodeUnreachable,
    ReadOnlyViolation,
)
from harness.yamlsafe import YamlRefused, load_yaml

log = logging.getLogger(__name__)

TOKEN_HEADER = "Kong-Admin-Token"

#: entity name (as the harness says it) -> Admin API collection path
ENTITY_PATHS: Mapping[str, str] = {
    "services": "/services",
    "routes": "/routes",
    "consumers": "/consumers",
    "plugins": "/plugins",
    "key-auths": "/key-auths",
    "keyauth_credentials": "/key-auths",
    "upstreams": "/upstreams",
    "targets": "/upstreams/{upstream}/targets",   # nested only: listed per upstream
    "certificates": "/certificates",
    "snis": "/snis",
    "ca_certificates": "/ca_certificates",
}

#: the largest answer body (after any gzip) the clients read by default. For the 55,000-entity config
#: (benchmarks.admin_budget) ``GET /config`` answers 19 MiB of YAML in a JSON string and the 201 answer to
#: its ``POST /config`` (every entity flattened, with defaults) is of the order of 23 MiB: 64 MiB is 2.8 times
#: the larger, room for larger entities (certificates, plugin configs) without letting a node exhaust memory.
MAX_ANSWER_BYTES = 64 * MiB

#: the answer size ``GET /config`` is given time for before its headers arrive (the node exports the whole
#: config first): 5 + 10 x 8 = 85 s, 19 times the 2.8-4.5 s the emulator took for the whole 19 MiB answer
#: of 55,000 entities. A larger answer earns more time as its bytes arrive.
CONFIG_EXPECTED_BYTES = 8 * MiB

#: a listing of one collection (all its pages) may take this long in total unless told otherwise: the
#: emulator listed 10,000 services (100 pages) in 0.4-0.5 s; two minutes is room for 20,000 routes on a CP
#: whose database is slower and busy, and stops an endless listing in two minutes with a message
LIST_SECONDS = 120.0

#: pages in a row without one entity, each pointing to a next page, before a listing is called endless
#: (Kong fills every page but the last; a tag-filtered page may come back short, never ten times empty)
MAX_EMPTY_PAGES = 10

_LIST_HINT = ("the node pages slowly or without end: check its load and its error log; a very large collection "
              "may need a longer listing deadline (list(..., deadline=...))")
_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_MAX_PAGES = 10_000
_PROGRESS_EVERY = 5.0        # seconds between progress lines in the log while listing


@dataclass(frozen=True)
class NodeInfo:
    """What ``GET /`` says about a node."""

    version: str
    edition: str | None            # "community" | "enterprise"; None before 3.6 (not reported)
    node_id: str | None
    hostname: str | None
    role: str                      # "traditional" | "control_plane" | "data_plane"
    database: str | None           # "off" in DB-less mode; "postgres" ...
    plugins_available: tuple[str, ...]
    plugins_enabled: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """``dbless``, ``cp``, ``dp`` or ``traditional``."""
        if self.role == "control_plane":
            return "cp"
        if self.role == "data_plane":
            return "dp"
        return "dbless" if self.database == "off" else "traditional"


@dataclass(frozen=True)
class DataPlane:
    """One row of a CP's ``/clustering/data-planes``."""

    id: str
    hostname: str | None
    ip: str | None
    version: str | None
    sync_status: str | None
    config_hash: str | None
    last_seen: float | None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ConfigLoad:
    """Result of ``POST /config``: 201 with the flattened entities, or 304 when ``check_hash`` matched."""

    status: int
    entities: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> bool:
        return self.status == 201


# ---------------------------------------------------------------------------------------------------
# transport guard


class _ReadOnlyTransport(httpx.BaseTransport):
    """Refuses every method but GET/HEAD before the request reaches the wrapped transport."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method.upper() not in _SAFE_METHODS:
            raise ReadOnlyViolation(
                f"refused {request.method} {request.url.copy_with(query=None)}: cluster X is read-only "
                "(the harness never writes to the running cluster)",
                hint="write only to cluster Y; use AdminClient for Y and ReadOnlyAdmin for X",
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()




# ---------------------------------------------------------------------------------------------------
# shared HTTP core


class _Watchdog:
    """Shuts a call's socket when its deadline passes, so a read or write blocked on a silent node returns
    then, not after a per-read timeout that a node sending a byte at a time never trips.

    The socket comes from httpcore's ``trace`` extension when the connection is made, or from the answer's
    ``network_stream``; with a transport that has neither (``httpx.MockTransport``) the checks between
    chunks still bound the call, only less tightly.
    """

    def __init__(self, at: Callable[[], float], clock: Callable[[], float]) -> None:
        self._at = at
        self._clock = clock
        self._sock: socket.socket | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.fired = False
        self._thread = threading.Thread(target=self._run, name="kuh-http-deadline", daemon=True)
        self._thread.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: keeps the socket of a new connection."""
        if event == "connection.connect_tcp.complete":
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        get = getattr(stream, "get_extra_info", None)
        sock = get("socket") if callable(get) else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sock = sock
                if self.fired:
                    self._shutdown()

    def _run(self) -> None:
        while not self._done.wait(max(0.0, self._at() - self._clock())):
            if self._clock() < self._at():
                continue                        # the deadline moved (more bytes of the answer came in)
            with self._lock:
                if self._done.is_set():
                    return
                self.fired = True
                self._shutdown()
            return

    def _shutdown(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):      # already closed
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)   # the plain socket's: also under TLS

    def stop(self) -> None:
        with self._lock:
            self._done.set()


class _Decoder:
    """A ``Content-Encoding`` decoder whose output per call is bounded, so a gzip bomb stops at the cap."""

    def __init__(self, encoding: str) -> None:
        name = encoding.strip().lower()
        self.name = name
        if name in ("", "identity"):
            self._z: Any = None
        elif name in ("gzip", "x-gzip", "deflate"):
            self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)      # gzip or zlib header, detected
        else:
            raise ValueError(name)

    def decode(self, data: bytes, room: int) -> bytes:
        """Up to ``room + 1`` bytes of output: one more than fits tells the caller it is too large."""
        if self._z is None:
            return data
        out = bytearray()
        while True:
            out += self._z.decompress(data, room + 1 - len(out))
            data = self._z.unconsumed_tail
            if len(out) > room or not data:
                return bytes(out)

    def finish(self) -> None:
        if self._z is not None and not self._z.eof:
            raise zlib.error("the compressed body ends early")


class _Http:
    """One httpx client with Kong-aware error mapping, a total deadline and a size cap per call, and
    bounded retries on transient failures."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        retries: int,
        transport: httpx.BaseTransport | None,
        read_only: bool,
        what: str,
        retry_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        budget: CallBudget | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{what} URL must be http(s)://host:port, got {base_url!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}")
        self.base_url = base_url.rstrip("/")
        self._origin = (parts.scheme, parts.netloc.lower())
        self.timeout = timeout
        self.budget = budget if budget is not None else CallBudget(base=timeout,
                                                                   cap=max(timeout, CallBudget().cap))
        self.max_bytes = max_bytes
        self.retries = max(0, retries)
        self.retry_cap = retry_cap
        self.what = what
        self._sleep = sleep
        self._clock = clock
        # no keep-alive: every call makes its own connection, so the watchdog always knows its socket
        inner = transport if transport is not None else httpx.HTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0))
        self.transport: httpx.BaseTransport = _ReadOnlyTransport(inner) if read_only else inner
        headers = {"Accept": "application/json", "Accept-Encoding": "identity",
                   "User-Agent": "kong-upgrade-harness"}
        if token:
            headers[TOKEN_HEADER] = token
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=self.transport,
            follow_redirects=False, trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return self.base_url + path if path.startswith("/") else urljoin(self.base_url + "/", path)

    def same_node(self, target: str) -> str | None:
        """``target`` as a path on this node, or None when it points anywhere else (another host or port)."""
        if target.startswith("/") and not target.startswith("//"):
            return target
        parts = urlsplit(target)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            return None
        base_path = urlsplit(self.base_url).path
        if not parts.path.startswith(base_path + "/"):
            return None
        path = parts.path[len(base_path):]
        return path + (f"?{parts.query}" if parts.query else "")

    def request(self, method: str, path: str, *, expect_bytes: int = 0, within: Deadline | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send one call and read its whole answer, within the call's total deadline and the size cap.

        The deadline is :attr:`budget` for what is sent plus ``expect_bytes`` (grown when the answer
        brings more bytes), never past ``within`` (e.g. a listing's deadline). The answer
        comes back fully read (``.content``), without its transfer encoding.
        """
        method = method.upper()
        url = self.url(path)
        request = self._client.build_request(method, url, **kwargs)
        sent = len(request.content) if isinstance(request.stream, httpx.ByteStream) else 0
        shown = f"{method} {request.url.path}"
        deadline = Deadline.start(self.budget.seconds(sent + expect_bytes), what=shown,
                                  where=f"{self.what} at {self.base_url}", clock=self._clock,
                                  hint="is the node overloaded or stuck? check its error log; for a large "
                                       "config, raise the Admin API call budget (CallBudget.cap)")
        if within is not None:
            deadline = deadline.extended_to(min(deadline.seconds, within.at - deadline.started))
        call = _Call(self, method, shown, sent, expect_bytes, deadline, within)
        attempt = 0
        while True:
            try:
                return call.attempt(request)
            except _Retryable as retry:
                last = retry
            out_of_time = last.delay >= call.deadline.remaining()
            if attempt >= self.retries or not last.safe or out_of_time:
                if last.response is not None:
                    return last.response            # the node's own answer (e.g. Kong's 503 message)
                if out_of_time and last.safe and attempt < self.retries:
                    raise call.too_slow(f"no time left to retry after {attempt + 1} attempts; the last: "
                                        f"{last.reason}")
                raise self._unreachable(method, url, last.reason, attempt, call.deadline)
            attempt += 1
            log.debug("%s: %s, retry %d/%d in %.2fs", shown, last.reason, attempt, self.retries, last.delay)
            self._sleep(last.delay)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After")
        if value is None:
            return min(self.retry_cap, 0.1 * 2 ** attempt)
        try:
            seconds = float(value)
        except ValueError:
            return self.retry_cap
        return max(0.0, min(self.retry_cap, seconds)) if seconds == seconds else self.retry_cap

    def _unreachable(self, method: str, url: str, failure: str, attempts: int,
                     deadline: Deadline) -> NodeUnreachable:
        tries = f" after {attempts + 1} attempts" if attempts else ""
        return NodeUnreachable(
            f"{self.what} at {url} did not answer {method}{tries} (deadline {round(deadline.seconds, 1):g}s): "
            f"{failure}",
            hint="is the node running? check admin_listen (and status_listen for the Status API) "
                 "and that the URL's host and port are right",
        )

    def json(self, response: httpx.Response, *, expect: type = dict) -> Any:
        """Kong's JSON body, raising :class:`AdminAPIError` for error statuses and
        :class:`BadResponse` for redirects and for bodies that are not JSON of the expected shape."""
        request = response.request
        where = f"{request.method} {request.url.copy_with(query=None)}"
        if response.status_code >= 400:
            raise api_error(where, response)
        if response.status_code >= 300:
            location = response.headers.get("Location", "")
            raise BadResponse(
                f"{where} answered {response.status_code}, a redirect to {_scrub(location)[:200]!r}; Kong's "
                "Admin and Status APIs never redirect, and the harness does not follow redirects",
                hint="point the plan at the node's own admin_listen / status_listen address, not at a "
                     "proxy or load balancer in front of it")
        body = _parse_json(response)
        if body is _NOT_JSON:
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise BadResponse(
                f"{where} answered {response.status_code} ({_scrub(kind)[:80]}) with a body that is not JSON: "
                f"{_preview(response)!r}",
                hint="is this URL a Kong Admin/Status API? check the port (proxy and admin ports differ)",
            )
        if not isinstance(body, expect):
            raise BadResponse(
                f"{where} answered JSON of the wrong shape: expected {expect.__name__}, got "
                f"{type(body).__name__}: {_preview(response)}",
                hint="is this URL a Kong Admin/Status API of a supported version (2.8, 3.x)?",
            )
        return body


class _Retryable(Exception):
    """Internal: one attempt failed in a way that may be retried (``safe``), after ``delay`` seconds."""

    def __init__(self, reason: str, *, safe: bool, delay: float, cause: BaseException | None = None,
                 response: httpx.Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.safe = safe
        self.delay = delay
        self.cause = cause
        self.response = response


class _Call:
    """One call's attempts: each sent within the call's deadline and read up to the size cap."""

    def __init__(self, http: _Http, method: str, shown: str, sent: int, expect: int, deadline: Deadline,
                 within: Deadline | None) -> None:
        self.http = http
        self.method = method
        self.shown = shown
        self.sent = sent
        self.expect = expect
        self.deadline = deadline
        self.within = within
        self.attempts = 0

    def grow(self, size: int) -> None:
        """More time for a larger answer as its bytes arrive, never past ``within``. Only bytes seen count:
        an announced ``Content-Length`` would let a node that drips one byte a second claim the cap."""
        seconds = self.http.budget.seconds(self.sent + max(self.expect, size))
        if self.within is not None:
            seconds = min(seconds, self.within.at - self.deadline.started)
        if seconds > self.deadline.seconds:
            self.deadline = self.deadline.extended_to(seconds)

    def too_slow(self, detail: str) -> NodeTooSlow:
        outer = self.within
        if outer is not None and outer.expired:
            error = outer.error(f"{detail} (during {self.shown})", cls=NodeTooSlow)
        else:
            error = self.deadline.error(f"{detail} (limit: {self.http.budget.describe()})", cls=NodeTooSlow)
        assert isinstance(error, NodeTooSlow)
        return error

    def attempt(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        http = self.http
        left = self.deadline.remaining()
        if left <= 0:
            raise self.too_slow("no time left for another attempt")
        request.extensions["timeout"] = httpx.Timeout(left, connect=min(http.timeout, left)).as_dict()
        watchdog = _Watchdog(lambda: self.deadline.at, self.deadline.clock)
        request.extensions["trace"] = watchdog.trace
        safe = self.method in _SAFE_METHODS
        try:
            try:
                response = http._client.send(request, stream=True)
            except ReadOnlyViolation:
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:   # nothing reached the node
                if watchdog.fired or self.deadline.expired:
                    raise self.too_slow(f"no connection: {type(exc).__name__}") from None
                raise _Retryable(_describe(exc), safe=True, delay=min(http.retry_cap, 0.1 * 2 ** self.attempts),
                                 cause=exc) from None
            except httpx.TransportError as exc:
                if watchdog.fired or self.deadline.expired:
                    raise self.too_slow("no answer in time (not even its headers)") from None
                timeout = isinstance(exc, httpx.TimeoutException)
                raise _Retryable(_describe(exc), safe=safe and timeout,
                                 delay=min(http.retry_cap, 0.1 * 2 ** self.attempts), cause=exc) from None
            watchdog.watch(response.extensions.get("network_stream"))
            try:
                body = self._read(response, watchdog)
            finally:
                response.close()
        finally:
            watchdog.stop()
        headers = [(k, v) for k, v in response.headers.raw
                   if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")]
        answer = httpx.Response(response.status_code, headers=headers, content=body, request=request,
                                extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")})
        if response.status_code in _TRANSIENT_STATUS and safe:
            raise _Retryable(f"answered {response.status_code}", safe=True,
                             delay=http._retry_after(answer, self.attempts), response=answer)
        return answer

    def _read(self, response: httpx.Response, watchdog: _Watchdog) -> bytes:
        http = self.http
        cap = http.max_bytes
        where = f"{self.shown} on {http.what} at {http.base_url}"
        declared = _content_length(response)
        if declared is not None and declared > cap and response.headers.get("Content-Encoding") is None:
            raise AnswerTooLarge(
                f"{where} announced an answer of {declared:,} bytes, over the client's limit of {cap:,} "
                "bytes; nothing of it was read",
                hint="if the node's config really is this large, raise max_bytes of the Admin client; "
                     "otherwise the URL may not be a Kong Admin API")
        if response.is_stream_consumed:         # answered from memory (httpx.MockTransport), already decoded
            if len(response.content) > cap:
                raise AnswerTooLarge(f"{where} sent {len(response.content):,} bytes, over the client's limit of "
                                     f"{cap:,} bytes", hint="raise max_bytes of the Admin client if this is right")
            return response.content
        try:
            decoder = _Decoder(response.headers.get("Content-Encoding", ""))
        except ValueError as exc:
            raise BadResponse(
                f"{where} answered with Content-Encoding {str(exc)[:40]!r}, which the client did not ask for "
                "(it asks for identity) and cannot decode",
                hint="is a proxy between the harness and the node re-encoding answers? talk to the node "
                     "directly") from None
        body = bytearray()
        try:
            for chunk in response.iter_raw():
                body += decoder.decode(chunk, cap - len(body))
                if len(body) > cap:
                    raise AnswerTooLarge(
                        f"{where} sent more than the client's limit of {cap:,} bytes; stopped reading there",
                        hint="if the node's config really is this large, raise max_bytes of the Admin client; "
                             "otherwise the node is sending something other than Kong's answer")
                self.grow(len(body))
                if self.deadline.expired:
                    raise self.too_slow(f"{len(body):,} bytes of the answer read so far")
            decoder.finish()
        except httpx.TransportError as exc:
            if watchdog.fired or self.deadline.expired:
                raise self.too_slow(f"{len(body):,} bytes of the answer read so far") from None
            expected = f" of {declared:,}" if declared is not None else ""
            raise _Retryable(
                f"connection closed after {len(body):,}{expected} bytes of the answer ({type(exc).__name__})",
                safe=self.method in _SAFE_METHODS, delay=min(http.retry_cap, 0.1 * 2 ** self.attempts),
                cause=exc) from None
        except zlib.error as exc:
            raise BadResponse(f"{where} sent a {decoder.name} body that does not decode: {exc}",
                              hint="is a proxy between the harness and the node garbling answers?") from None
        return bytes(body)


_NOT_JSON = object()


def _parse_json(response: httpx.Response) -> Any:
    """The body as JSON, or ``_NOT_JSON`` (never another exception: not UTF-8, too deep, huge numbers)."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):      # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _NOT_JSON


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _preview(response: httpx.Response, limit: int = 200) -> str:
    """The start of an answer's body as text, for error messages (never the whole body)."""
    return response.content[: limit * 4].decode("utf-8", "replace")[:limit]


def _scrub(text: str) -> str:
    return text[:300]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_scrub(str(exc))}"


_HINTS: tuple[tuple[Callable[[int, str, int | None], bool], str], ...] = (
    (lambda s, m, c: c == 12 or (s == 405 and "not using a database" in m),
     "this node is DB-less (or a DP): entities cannot be written one by one; load a whole declarative "
     "config with POST /config"),
    (lambda s, m, c: "configured to not use a database" in m,
     "this node uses a database (traditional mode or a CP): read its config by entity listing "
     "(harness.config.capture does) and load config through entity endpoints"),
    (lambda s, m, c: "configured to run as Control Plane" in m,
     "/clustering/* exists only on a control plane (role = control_plane); ask the CP, not a DP"),
    (lambda s, m, c: c == 14,
     "the declarative config is invalid: see the fields above; run the considerations stage for "
     "version-specific rules"),
    (lambda s, m, c: s == 413 and ("LMDB" in m or "cache" in m),
     "the config is too large for the node: raise lmdb_map_size (3.x) or mem_cache_size (2.8)"),
    (lambda s, m, c: s == 413,      # nginx's own HTML page: the body is over the Admin API's limit (§9.1)
     "the request body is over the Admin API's nginx_admin_client_max_body_size (10m by default): raise it "
     "on the node (KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE)"),
    (lambda s, m, c: s == 429,
     "the node is still loading the previous configuration; wait and retry"),
    (lambda s, m, c: s in (401, 403),
     "the Admin API wants a token: put it in an environment variable and name it in "
     "credentials.admin_token_env"),
    (lambda s, m, c: s == 404,
     "the endpoint does not exist on this node or version (e.g. /status/ready needs 3.3+ and the Status "
     "API; /config needs a DB-less node)"),
)


def api_error(where: str, response: httpx.Response) -> AdminAPIError:
    """An :class:`AdminAPIError` carrying Kong's own message, code and name, with a next step."""
    body: Any = _parse_json(response)
    if body is _NOT_JSON:
        body = _preview(response) or None
    kong_message = code = name = None
    if isinstance(body, dict):
        kong_message = body.get("message") if isinstance(body.get("message"), str) else None
        code = body.get("code") if isinstance(body.get("code"), int) else None
        name = body.get("name") if isinstance(body.get("name"), str) else None
    status = response.status_code
    text = (kong_message[:500] if kong_message else None) or (body if isinstance(body, str) else None) \
        or _preview(response) or "(empty body)"
    message = f"{where} answered {status}: {text}"
    if code is not None:
        message += f" (code {code}, {name})"
    hint = next((h for match, h in _HINTS if match(status, kong_message or "", code)), None)
    return AdminAPIError(message, status=status, kong_message=kong_message, code=code, name=name,
                         body=body, hint=hint)


# ---------------------------------------------------------------------------------------------------
# clients


class _StatusReads:
    _http: _Http

    def status(self) -> dict[str, Any]:
        """``GET /status``: memory, server counters, database (not in DB-less 3.4+), configuration_hash."""
        response = self._http.request("GET", "/status")
        body = self._http.json(response)
        if "server" not in body:
            raise BadResponse(f"GET {self._http.url('/status')} has no 'server' field: {_preview(response)}")
        return dict(body)

    def ready(self) -> tuple[int, str]:
        """``GET /status/ready`` (3.3+): ``(200, "ready")`` or ``(503, Kong's reason)``."""
        response = self._http.request("GET", "/status/ready")
        if response.status_code in (200, 503):
            body = _parse_json(response)
            message = body.get("message") if isinstance(body, dict) else None
            if not isinstance(message, str):
                raise BadResponse(
                    f"GET {self._http.url('/status/ready')} answered {response.status_code} without a "
                    f"message: {_preview(response)!r}")
            return response.status_code, message
        if 300 <= response.status_code < 400:
            self._http.json(response)           # raises: a redirect
        raise api_error(f"GET {self._http.url('/status/ready')}", response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatusClient(_StatusReads):
    """The Status API (``status_listen``): the only HTTP surface of a DP. Read-only by construction.

    ``timeout`` is the base of every call's total deadline (``budget`` replaces the whole policy);
    ``max_bytes`` caps an answer's size.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None, budget: CallBudget | None = None,
                 max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._http = _Http(base_url, token=None, timeout=timeout, retries=retries, transport=transport,
                           read_only=True, what="Kong Status API", budget=budget, max_bytes=max_bytes)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        return f"StatusClient({self._http.base_url!r})"


@dataclass(frozen=True)
class _Settings:
    token: str | None = field(repr=False)
    timeout: float
    retries: int
    transport: httpx.BaseTransport | None
    retry_cap: float
    sleep: Callable[[float], None]
    budget: CallBudget | None
    max_bytes: int


#: ``on_progress(pages, entities)``: called after every page of a listing with the totals so far
Progress = Callable[[int, int], None]


class _AdminReads(_StatusReads):
    """The read methods shared by :class:`AdminClient` and :class:`ReadOnlyAdmin`, and their
    constructor: the two differ only in whether the transport refuses writes (``_read_only``).

    ``timeout`` is the base of every call's total deadline and the connect timeout; ``budget`` replaces
    the whole size-scaled policy (harness.deadline.CallBudget); ``max_bytes`` caps an answer's size.
    """

    _read_only: bool
    _what: str

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        retry_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        budget: CallBudget | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._settings = _Settings(token, timeout, retries, transport, retry_cap, sleep, budget, max_bytes)
        self._http = _Http(base_url, token=token, timeout=timeout, retries=retries, transport=transport,
                           read_only=self._read_only, what=self._what, retry_cap=retry_cap, sleep=sleep,
                           budget=budget, max_bytes=max_bytes)

    def __repr__(self) -> str:
        token = ", token=<set>" if self._settings.token else ""
        return f"{type(self).__name__}({self._http.base_url!r}{token})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def root(self) -> NodeInfo:
        """``GET /``: version, edition, node id, role, database, plugins."""
        response = self._http.request("GET", "/")
        body = self._http.json(response)
        version = body.get("version")
        if not isinstance(version, str):
            raise BadResponse(f"GET {self._http.url('/')} has no version: {_preview(response)}",
                              hint="is this URL a Kong Admin API? (the proxy port answers 404 here)")
        conf = body.get("configuration") if isinstance(body.get("configuration"), dict) else {}
        plugins = body.get("plugins") if isinstance(body.get("plugins"), dict) else {}
        available = plugins.get("available_on_server")
        enabled = plugins.get("enabled_in_cluster")
        return NodeInfo(
            version=version,
            edition=_text(body.get("edition")),
            node_id=_text(body.get("node_id")),
            hostname=_text(body.get("hostname")),
            role=_text(conf.get("role")) or "traditional",
            database=_text(conf.get("database")),
            # 2.8: name->true; 3.x: name->{version,priority}
            plugins_available=tuple(sorted(str(p) for p in available)) if isinstance(available, dict) else (),
            plugins_enabled=tuple(sorted(p for p in enabled if isinstance(p, str))) if isinstance(enabled, list)
            else (),
            raw=body,
        )

    def config(self, *, expect_bytes: int = CONFIG_EXPECTED_BYTES, deadline: Deadline | None = None) -> dict[str, Any]:
        """DB-less ``GET /config``: the flat declarative export, parsed from its YAML string.

        The call gets time for an answer of ``expect_bytes`` before its headers arrive (the node exports
        first), more as a larger answer comes in, never past ``deadline`` when one is given.
        The YAML is read with aliases, nesting and size limited (harness.yamlsafe): a YAML bomb is
        refused at once.
        """
        where = f"GET {self._http.url('/config')}"
        response = self._http.request("GET", "/config", expect_bytes=expect_bytes, within=deadline)
        body = self._http.json(response)
        text = body.get("config")
        if not isinstance(text, str):
            raise BadResponse(f"{where} has no 'config' string: {_preview(response)}",
                              hint="is this node DB-less? (a CP or database node answers 400 here)")
        data = _node_yaml(text, where=where, max_bytes=self._http.max_bytes)
        if not isinstance(data, dict):
            raise BadResponse(f"{where}: the config is not a mapping but {type(data).__name__}",
                              hint="is this URL a Kong Admin API? Kong exports a mapping with _format_version")
        return data

    def pages(self, path: str, *, size: int | None = None, deadline: Deadline | None = None,
              on_progress: Progress | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following ``next`` page by page.

        The whole listing has one total ``deadline`` (default :data:`LIST_SECONDS`; each page's call
        also within its own budget). A listing that repeats a page or an entity, comes back empty page
        after page, points off this node, or passes the page cap or its deadline is stopped with an error
        that says how far it got. ``on_progress(pages, entities)`` is called after every page, and a
        progress line is logged every few seconds.
        """
        http = self._http
        listing = deadline if deadline is not None else Deadline.start(
            LIST_SECONDS, what=f"listing {path}", where=f"{http.what} at {http.base_url}", clock=http._clock)
        if listing.hint is None:
            listing = replace(listing, hint=_LIST_HINT)
        params: dict[str, Any] | None = {"size": size} if size else None
        next_path = path
        seen_next: set[str] = set()
        seen_ids: set[str] = set()
        pages = entities = empty = 0
        last_log = listing.clock()

        def stopped(reason: str) -> str:
            return (f"listing {http.url(path)} stopped after {pages:,} pages and {entities:,} entities "
                    f"({listing.elapsed():.1f}s): {reason}")

        while True:
            if pages >= _MAX_PAGES:
                raise BadResponse(stopped(f"more than {_MAX_PAGES:,} pages; the node's pagination looks "
                                          f"endless (last next: {next_path[:120]!r})"),
                                  hint="check the node's pagination; Kong's pages hold up to 1,000 entities")
            if listing.expired:
                raise listing.error(stopped(f"last next: {next_path[:120]!r}"), cls=NodeTooSlow)
            try:
                response = http.request("GET", next_path, params=params, within=listing)
            except NodeTooSlow as exc:
                if listing.expired:
                    raise listing.error(stopped(f"its deadline passed during GET {next_path[:120]}"),
                                        cls=NodeTooSlow) from None
                raise NodeTooSlow(f"{stopped(f'page {pages + 1} did not come in time')}; {exc.message}",
                                  hint=exc.hint, what=exc.what, where=exc.where, seconds=exc.seconds,
                                  elapsed=exc.elapsed) from None
            body = http.json(response)
            data = body.get("data")
            if not isinstance(data, list):
                raise BadResponse(f"GET {http.url(next_path)} is not a Kong collection (no 'data' list): "
                                  f"{_preview(response)}")
            pages += 1
            for item in data:
                if not isinstance(item, dict):
                    raise BadResponse(stopped(f"an item of page {pages} is {type(item).__name__}, not an "
                                              "entity object"))
                item_id = item.get("id")
                if isinstance(item_id, str):
                    if item_id in seen_ids:
                        raise BadResponse(stopped(f"page {pages} repeats entity {item_id[:64]!r}: the node's "
                                                  "pagination loops"),
                                          hint="is the collection being written to during the listing?")
                    seen_ids.add(item_id)
            entities += len(data)
            empty = 0 if data else empty + 1
            if on_progress is not None:
                on_progress(pages, entities)
            now = listing.clock()
            if now - last_log >= _PROGRESS_EVERY:
                log.info("listing %s: %d pages, %d entities so far (%.0fs)", http.url(path), pages, entities,
                         listing.elapsed())
                last_log = now
            yield from data
            nxt = body.get("next")
            if nxt is None or nxt == "":
                return
            if not isinstance(nxt, str) or nxt in seen_next:
                raise BadResponse(stopped(f"GET {http.url(next_path)} gave a bad or repeated next page "
                                          f"{_short(nxt)}"))
            if empty >= MAX_EMPTY_PAGES:
                raise BadResponse(stopped(f"{empty} pages in a row without an entity, each with a next page: "
                                          "the node's pagination looks endless"))
            same = http.same_node(nxt)
            if same is not None:
                try:
                    httpx.URL(http.url(same))
                except (httpx.InvalidURL, ValueError):
                    raise BadResponse(stopped(f"the next page {_short(nxt)} is not a valid URL")) from None
            if same is None:
                raise BadResponse(stopped(f"the next page {nxt[:120]!r} is not on this node; the harness "
                                          "never follows a node elsewhere (it would carry the admin token)"),
                                  hint="point the plan at the node's own admin_listen address")
            seen_next.add(nxt)
            next_path, params = same, None        # Kong's next already carries offset (and size)

    def list(self, entity: str, *, size: int | None = None, deadline: Deadline | None = None,
             on_progress: Progress | None = None) -> list[dict[str, Any]]:
        """All entities of one kind, across pages. ``targets`` are listed per upstream.

        ``deadline`` bounds the whole listing (default: :data:`LIST_SECONDS` per collection);
        ``on_progress(pages, entities)`` reports each page (totals for this call).
        """
        if entity not in ENTITY_PATHS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(sorted(ENTITY_PATHS))}")
        http = self._http
        total = deadline if deadline is not None else Deadline.start(
            LIST_SECONDS, what=f"listing {entity}", where=f"{http.what} at {http.base_url}", clock=http._clock,
            hint=_LIST_HINT)
        if entity == "targets":
            tally = _Tally(on_progress)
            upstreams = list(self.pages("/upstreams", size=size, deadline=total, on_progress=tally.page))
            out: list[dict[str, Any]] = []
            for upstream in upstreams:
                upstream_id = upstream.get("id")
                if not isinstance(upstream_id, str) or not upstream_id:
                    raise BadResponse(f"GET {http.url('/upstreams')} listed an upstream without an id: "
                                      f"{_short(upstream)}", hint="is this URL a Kong Admin API?")
                tally.next_listing()
                out.extend(self.pages(f"/upstreams/{quote(upstream_id, safe='')}/targets", size=size,
                                      deadline=total, on_progress=tally.page))
            return out
        return list(self.pages(ENTITY_PATHS[entity], size=size, deadline=total, on_progress=on_progress))

    def data_planes(self) -> tuple[DataPlane, ...]:
        """A CP's ``/clustering/data-planes`` (400 with Kong's message on any other node)."""
        planes = []
        for row in self.pages("/clustering/data-planes"):
            labels = row.get("labels")
            planes.append(DataPlane(
                id=str(row.get("id")), hostname=_text(row.get("hostname")), ip=_text(row.get("ip")),
                version=_text(row.get("version")), sync_status=_text(row.get("sync_status")),
                config_hash=_text(row.get("config_hash")),
                last_seen=row.get("last_seen") if isinstance(row.get("last_seen"), int | float) else None,
                labels=labels if isinstance(labels, dict) else {}, raw=row,
            ))
        return tuple(planes)


class _Tally:
    """Progress over several listings as one: pages and entities summed across them."""

    def __init__(self, report: Progress | None) -> None:
        self._report = report
        self._base = (0, 0)
        self.pages = self.entities = 0

    def page(self, pages: int, entities: int) -> None:
        self.pages, self.entities = self._base[0] + pages, self._base[1] + entities
        if self._report is not None:
            self._report(self.pages, self.entities)

    def next_listing(self) -> None:
        self._base = (self.pages, self.entities)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120


def _short(value: Any) -> str:
    """A short, bounded repr of any value from an answer (safe for deep nesting)."""
    return _REPR.repr(value)


def _text(value: Any) -> str | None:
    """A string field of Kong's answer, or None when it is missing or not a string."""
    return value if isinstance(value, str) else None


def _node_yaml(text: str, *, where: str, max_bytes: int) -> Any:
    """A node's YAML answer, read with size, nesting and aliases limited (harness.yamlsafe): a YAML bomb
    is refused at once, as a :class:`BadResponse` naming the limit."""
    try:
        return load_yaml(text, source=where, max_bytes=max_bytes)
    except (YamlRefused, yaml.YAMLError) as exc:
        raise BadResponse(f"{where} returned YAML that was refused or does not parse: {_scrub(str(exc))}",
                          hint="Kong's own export is plain YAML without aliases: check what answers on this "
                               "port, or capture the config by entity listing") from None


class AdminClient(_AdminReads):
    """Kong Admin API client: reads, and writes for cluster Y (``post_config``, ``create``)."""

    _read_only = False
    _what = "Kong Admin API"

    def read_only(self) -> ReadOnlyAdmin:
        """A read-only view of the same node (same URL, token, timeouts and transport)."""
        s = self._settings
        return ReadOnlyAdmin(self._http.base_url, token=s.token, timeout=s.timeout, retries=s.retries,
                             transport=s.transport, retry_cap=s.retry_cap, sleep=s.sleep, budget=s.budget,
                             max_bytes=s.max_bytes)

    def post_config(self, config: str | Mapping[str, Any], *, check_hash: bool = False,
                    flatten_errors: bool = False) -> ConfigLoad:
        """DB-less ``POST /config``. Text goes in the ``config`` field (so ``check_hash`` can answer 304);
        a dict goes as the JSON body and must carry ``_format_version``. The call's deadline grows with
        the size of what is sent (harness.deadline.CallBudget): Kong validates and loads it all first."""
        params = {}
        if check_hash:
            params["check_hash"] = "1"
        if flatten_errors:
            params["flatten_errors"] = "1"
        if isinstance(config, str):
            payload: Any = {"config": config}
        else:
            if "_format_version" not in config:
                raise ValueError("a declarative config dict needs _format_version (e.g. \"3.0\")")
            payload = dict(config)
        response = self._http.request("POST", "/config", params=params, json=payload)
        if response.status_code == 304:
            return ConfigLoad(304)
        body = self._http.json(response)
        return ConfigLoad(response.status_code, body)

    def create(self, entity: str, body: Mapping[str, Any], *, parent: str | None = None) -> dict[str, Any]:
        """``POST`` one entity (database mode / CP); ``parent`` nests it: ``/consumers/{id}/key-auth``."""
        if parent is not None:
            child = "key-auth" if entity in ("key-auths", "keyauth_credentials") else entity
            path = f"{parent.rstrip('/')}/{child}"
        elif entity in ENTITY_PATHS and "{" not in ENTITY_PATHS[entity]:
            path = ENTITY_PATHS[entity]
        else:
            raise ValueError(f"cannot create {entity!r} at top level; give parent= (e.g. '/upstreams/<id>')")
        return dict(self._http.json(self._http.request("POST", path, json=dict(body))))

    def load_config_via_entities(self, declarative: Mapping[str, Any]) -> dict[str, int]:
        """Create a declarative config's entities one by one (a CP or database-mode node), parents first.

        Accepts nested and flat files; foreign keys by name or id. Returns counts per kind.
        """
        from harness.config import NESTED_CHILDREN

        ids: dict[str, dict[str, str]] = {}
        counts: dict[str, int] = {}

        def remember(kind: str, item: Mapping[str, Any], created: Mapping[str, Any]) -> str:
            new_id = str(created.get("id"))
            table = ids.setdefault(kind, {})
            for f in ("id", "name", "username", "custom_id"):
                if item.get(f):
                    table[str(item[f])] = new_id
            counts[kind] = counts.get(kind, 0) + 1
            return new_id

        def ref(kind: str, value: Any) -> dict[str, str]:
            if isinstance(value, Mapping):
                value = value.get("id") or value.get("name") or value.get("username")
            return {"id": ids.get(kind, {}).get(str(value), str(value))}

        def strip(item: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in item.items()
                    if k not in ("created_at", "updated_at")
                    and not (k in NESTED_CHILDREN and isinstance(v, list)
                             and all(isinstance(i, Mapping) for i in v))}

        deferred: list[Callable[[], None]] = []     # plugins go last: they may name any consumer

        def create_plugins(items: Any, scope: dict[str, Any]) -> None:
            for plugin in items or []:
                def create_one(plugin: Mapping[str, Any] = plugin) -> None:
                    body = strip(plugin)
                    for f, kind in (("service", "services"), ("route", "routes"), ("consumer", "consumers")):
                        if body.get(f) is not None:
                            body[f] = ref(kind, body[f])
                    body.update(scope)
                    remember("plugins", plugin, self.create("plugins", body))
                deferred.append(create_one)

        def create_route(route: Mapping[str, Any], service_id: str | None) -> None:
            body = strip(route)
            if service_id is not None:
                body["service"] = {"id": service_id}
            elif body.get("service") is not None:
                body["service"] = ref("services", body["service"])
            route_id = remember("routes", route, self.create("routes", body))
            create_plugins(route.get("plugins"), {"route": {"id": route_id}})

        for service in declarative.get("services") or []:
            service_id = remember("services", service, self.create("services", strip(service)))
            for route in service.get("routes") or []:
                create_route(route, service_id)
            create_plugins(service.get("plugins"), {"service": {"id": service_id}})
        for route in declarative.get("routes") or []:
            create_route(route, None)
        for consumer in declarative.get("consumers") or []:
            consumer_id = remember("consumers", consumer, self.create("consumers", strip(consumer)))
            for cred in consumer.get("keyauth_credentials") or []:
                remember("keyauth_credentials", cred,
                         self.create("key-auths", strip(cred), parent=f"/consumers/{consumer_id}"))
            create_plugins(consumer.get("plugins"), {"consumer": {"id": consumer_id}})
        for cred in declarative.get("keyauth_credentials") or []:
            consumer_ref = ref("consumers", cred.get("consumer"))["id"]
            body = {k: v for k, v in strip(cred).items() if k != "consumer"}
            remember("keyauth_credentials", cred,
                     self.create("key-auths", body, parent=f"/consumers/{consumer_ref}"))
        for upstream in declarative.get("upstreams") or []:
            upstream_id = remember("upstreams", upstream, self.create("upstreams", strip(upstream)))
            for target in upstream.get("targets") or []:
                remember("targets", target, self.create("targets", strip(target),
                                                        parent=f"/upstreams/{upstream_id}"))
        for target in declarative.get("targets") or []:
            upstream_ref = ref("upstreams", target.get("upstream"))["id"]
            body = {k: v for k, v in strip(target).items() if k != "upstream"}
            remember("targets", target, self.create("targets", body, parent=f"/upstreams/{upstream_ref}"))
        create_plugins(declarative.get("plugins"), {})
        for create_one in deferred:
            create_one()
        return counts


class ReadOnlyAdmin(_AdminReads):
    """The view of a cluster-X node: read methods only, over a transport that refuses writes."""

    _read_only = True
    _what = "Kong Admin API (read-only view)"
