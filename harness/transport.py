"""The bounded HTTP call under the Admin and Status clients (harness.admin): one httpx client per node.

Every call is bounded (harness.deadline): a TOTAL deadline per call, from its size (a base plus a
per-MiB allowance for what is sent and what comes back, capped), not httpx's per-read timeout, which a
node answering one byte a second never trips; and a maximum answer size (the clients' ``max_bytes``),
read as a stream and refused once over, so no answer can hold more than that in memory. A watchdog
shuts the call's socket at its deadline, so even a read blocked on a silent node returns then.
Past its deadline a call raises :class:`NodeTooSlow`; over the size, :class:`AnswerTooLarge`.

Retries are bounded and only for transient failures, and all attempts share the call's one deadline:
connection errors (nothing was sent), and, for GETs, timeouts, answers cut off mid-body and
429/502/503/504, honouring ``Retry-After`` up to a cap. A 4xx is never retried. Redirects are not
followed (Kong's Admin API never redirects): a 3xx is a :class:`BadResponse`. A read-only transport
(cluster X) refuses every method but GET/HEAD with :class:`ReadOnlyViolation` before anything is sent.

The admin token is sent as ``Kong-Admin-Token`` and never appears in a repr, an error or a log line;
:meth:`Http.same_node` tells whether a URL is on the node's own host and port (a listing follows no other).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from harness.api_errors import NOT_JSON, api_error, parse_json, preview, scrub
from harness.deadline import CallBudget, Deadline
from harness.errors import AnswerTooLarge, BadResponse, NodeTooSlow, NodeUnreachable, ReadOnlyViolation

log = logging.getLogger(__name__)

TOKEN_HEADER = "Kong-Admin-Token"

_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


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


class Http:
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
        max_bytes: int,
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
            return min(self.retry_cap, 0.1 * 2.0 ** attempt)
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
                f"{where} answered {response.status_code}, a redirect to {scrub(location)[:200]!r}; Kong's "
                "Admin and Status APIs never redirect, and the harness does not follow redirects",
                hint="point the plan at the node's own admin_listen / status_listen address, not at a "
                     "proxy or load balancer in front of it")
        body = parse_json(response)
        if body is NOT_JSON:
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise BadResponse(
                f"{where} answered {response.status_code} ({scrub(kind)[:80]}) with a body that is not JSON: "
                f"{preview(response)!r}",
                hint="is this URL a Kong Admin/Status API? check the port (proxy and admin ports differ)",
            )
        if not isinstance(body, expect):
            raise BadResponse(
                f"{where} answered JSON of the wrong shape: expected {expect.__name__}, got "
                f"{type(body).__name__}: {preview(response)}",
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

    def __init__(self, http: Http, method: str, shown: str, sent: int, expect: int, deadline: Deadline,
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


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {scrub(str(exc))}"
