"""The probe: open-loop HTTP traffic at a fixed rate through the splitter, one record per request.

Open loop: request ``i`` is scheduled at ``start + i / rate`` whatever happened to earlier ones,
and its latency is measured from that scheduled time, not from when it was actually sent. A stall
(in the target, or in the probe itself) therefore shows up as latency instead of as fewer samples
(no coordinated omission). ``sent - scheduled`` is kept per record as the probe's own lag.

Each response is attributed to a side: the splitter's ``X-KUH-Side`` / ``X-KUH-Upstream`` headers
first, else Kong's version in ``Via`` (``kong/3.7.1``, ``1.1 kong/3.8.0``) or ``Server`` mapped to a
side by the caller's ``version_sides``. Answers nobody can attribute count as missing data.

Concurrency is asyncio in a thread of its own with one ``aiohttp.ClientSession``. httpx was
measured first on this 2-core machine against a static nginx: httpx.AsyncClient 2.3-4.0 ms of CPU
per request (under 500 req/s, the probe lagged seconds behind its schedule), httpx.Client in
threads 0.9 ms, aiohttp 0.22-0.32 ms; ``benchmarks/probe_rate.py`` measures the resulting ceiling.
The sending is one seam (``Sender``), so tests drive the probe with a fake target and no sockets.
The probe runs in the foreground (``run``) or in the background across several steps (``start`` /
``take_window`` / ``stop``).
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from harness.errors import ProbeError
from harness.model import ProbeRecord, ProbeWindow, Side
from harness.traffic.base import HEADER_PIN, HEADER_SIDE, HEADER_UPSTREAM

_KONG_VERSION = re.compile(r"kong/(\d+\.\d+\.\d+[\w.\-]*)", re.IGNORECASE)


@dataclass(frozen=True)
class ProbeRequest:
    """One kind of request in the probe's mix; the caller derives the mix from the configuration.

    ``expect_status``: the status (or statuses) a healthy gateway gives; None means "anything
    below 500". ``headers`` may hold credentials: they are sent, never recorded or exported.
    """

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_status: int | tuple[int, ...] | None = 200
    name: str = ""
    body: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        object.__setattr__(self, "method", self.method.upper())
        if not self.path.startswith("/"):
            raise ProbeError(f"probe request path {self.path!r} must start with '/'")
        if not self.name:
            object.__setattr__(self, "name", f"{self.method} {safe_path(self.path)}")

    def accepts(self, status: int) -> bool:
        if self.expect_status is None:
            return status < 500
        if isinstance(self.expect_status, int):
            return status == self.expect_status
        return status in self.expect_status


def safe_path(path: str) -> str:
    """The path with every query value replaced by ``***`` (key-auth keys may travel there)."""
    parts = urlsplit(path)
    if not parts.query:
        return path
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit(("", "", parts.path, query, ""))


def attribute(
    headers: Mapping[str, str], version_sides: Mapping[str, Side] | None = None
) -> tuple[Side | None, str | None]:
    """(side, node) of a response: splitter headers first, else Kong's version in Via / Server.

    ``headers`` maps lower-case names to values (repeated headers joined with ", ").
    """
    side = headers.get(HEADER_SIDE.lower(), "").strip().lower()
    if side in ("x", "y"):
        return side, headers.get(HEADER_UPSTREAM.lower()) or None  # type: ignore[return-value]
    if version_sides:
        for name in ("via", "server"):
            found = _KONG_VERSION.findall(headers.get(name, ""))
            if found and found[-1] in version_sides:
                return version_sides[found[-1]], None
    return None, None


class ProbeTransportError(Exception):
    """Raised by a Sender when no HTTP answer came; ``kind`` is connect, timeout, protocol, ..."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# A Sender sends one request and returns (status, lower-case headers, retries), or raises
# ProbeTransportError when no HTTP answer came.
Sender = Callable[
    [str, str, Mapping[str, str], "bytes | None"], Awaitable[tuple[int, Mapping[str, str], int]]
]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class AiohttpSender:
    """The real Sender: one aiohttp session with a bounded keep-alive connection pool.

    When the server closes a kept-alive connection just as a request goes out on it (nginx does
    this to idle connections on every reload), no byte of an answer came: an idempotent request is
    then sent once more on a new connection, as browsers and most HTTP clients do (RFC 9110,
    9.2.2). The record counts the retry; its latency still runs from the scheduled time.
    """

    def __init__(self, base_url: str, *, timeout: float, max_connections: int) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpSender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], int]:
        assert self._session is not None
        url = URL(self.base_url + path, encoded=True)
        retries = 0
        try:
            while True:
                try:
                    async with self._session.request(
                        method, url, headers=dict(headers), data=body, allow_redirects=False,
                    ) as response:
                        await response.read()
                        seen: dict[str, str] = {}
                        for name, value in response.headers.items():
                            key = name.lower()
                            seen[key] = f"{seen[key]}, {value}" if key in seen else value
                        return response.status, seen, retries
                except aiohttp.ServerDisconnectedError:
                    if retries or method not in IDEMPOTENT:
                        raise
                    retries += 1
        except TimeoutError as exc:
            raise ProbeTransportError("timeout") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ProbeTransportError("connect", str(exc)) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError) as exc:
            raise ProbeTransportError("protocol", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ProbeTransportError(type(exc).__name__, str(exc)) from exc


class Probe:
    """Open-loop traffic to ``target_url`` at ``rate`` requests per second, cycling through ``mix``.

    Every run is bounded twice: by a request count and by a duration. ``pin_y`` sends every request
    with ``X-KUH-Pin: y`` so the splitter routes it to Y at any weight.
    """

    def __init__(
        self,
        target_url: str,
        mix: Sequence[ProbeRequest],
        *,
        rate: float,
        timeout: float = 2.0,
        max_connections: int = 64,
        version_sides: Mapping[str, Side] | None = None,
        pin_y: bool = False,
        keep_recent: int = 20_000,
        sender: Callable[[], AbstractAsyncContextManager[Sender]] | None = None,
    ) -> None:
        """``sender``: a factory returning an async context manager that is a Sender (tests
        pass a fake target); default :class:`AiohttpSender` on ``target_url``."""
        if not mix:
            raise ProbeError("the probe needs at least one ProbeRequest in its mix")
        if not 0 < rate <= 20_000:
            raise ProbeError(f"probe rate must be within (0, 20000] requests/s, got {rate}")
        if not target_url.startswith(("http://", "https://")):
            raise ProbeError(f"probe target {target_url!r} must be an http:// or https:// URL")
        self.target_url = target_url.rstrip("/")
        self.mix = tuple(mix)
        self.rate = float(rate)
        self.timeout = timeout
        self.max_connections = max_connections
        self.version_sides = MappingProxyType(dict(version_sides or {}))
        self.pin_y = pin_y
        self._sender_factory = sender or (
            lambda: AiohttpSender(self.target_url, timeout=timeout, max_connections=max_connections)
        )
        self._lock = threading.Lock()
        self._window: list[ProbeRecord] = []
        self._recent: deque[ProbeRecord] = deque(maxlen=keep_recent)
        self._completed = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._clock_base = (time.time(), time.monotonic())

    # clock: epoch seconds derived from the monotonic clock, so intervals are exact
    def now(self) -> float:
        wall, mono = self._clock_base
        return wall + (time.monotonic() - mono)

    def _epoch(self, mono: float) -> float:
        wall, base = self._clock_base
        return wall + (mono - base)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def completed(self) -> int:
        """How many records have completed since the probe was made (a cursor for ``records_after``)."""
        with self._lock:
            return self._completed

    def records_after(self, cursor: int) -> tuple[list[ProbeRecord], int]:
        """Records completed after ``cursor`` (from ``completed``), oldest first, and the new cursor.

        Only the last ``keep_recent`` records are kept for this; older ones are skipped.
        """
        with self._lock:
            new = self._completed - cursor
            items = list(self._recent)[-new:] if new > 0 else []
            return items, self._completed

    # foreground
    def run(self, *, count: int, duration: float, label: str = "",
            weights: tuple[int, int] | None = None) -> ProbeWindow:
        """Send up to ``count`` requests over at most ``duration`` seconds; return their window."""
        if self.running:
            raise ProbeError("the probe is already running in the background; use take_window()")
        self._check_bounds(count, duration)
        self._failure = None
        self.take_window()
        self._stop.clear()
        asyncio.run(self._drive(count, duration))
        if self._failure is not None:
            raise ProbeError(f"the probe to {self.target_url} failed: {self._failure!r}") from self._failure
        return self.take_window(label=label, weights=weights)

    # background
    def start(self, *, count: int = 3_600_000, duration: float = 3600.0) -> None:
        """Probe in a background thread until ``stop()`` or either bound is reached."""
        if self.running:
            raise ProbeError("the probe is already running")
        self._check_bounds(count, duration)
        self._failure = None
        self._stop.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._drive(count, duration)), name="kuh-probe", daemon=True
        )
        self._thread.start()

    def take_window(self, *, label: str = "", weights: tuple[int, int] | None = None,
                    sent_after: float | None = None) -> ProbeWindow:
        """The records completed since the last window (in-flight ones go into the next).

        ``sent_after`` (epoch seconds, e.g. ``probe.now()`` taken right after a weight change)
        keeps only requests sent at or after that time: a request sent under the old weights but
        answered after the change belongs to neither step.
        """
        with self._lock:
            records, self._window = self._window, []
        if self._failure is not None:
            raise ProbeError(f"the probe to {self.target_url} failed: {self._failure!r}") from self._failure
        if sent_after is not None:
            records = [r for r in records if r.sent >= sent_after]
        return ProbeWindow.of(records, label=label, weights=weights)

    def stop(self, *, label: str = "", weights: tuple[int, int] | None = None) -> ProbeWindow:
        """Stop the background probe, wait for requests in flight, return the last window."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=self.timeout + 5)
            if thread.is_alive():
                raise ProbeError(f"the probe thread did not stop within {self.timeout + 5:.0f}s")
        return self.take_window(label=label, weights=weights)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=self.timeout + 5)

    @staticmethod
    def _check_bounds(count: int, duration: float) -> None:
        if count <= 0 or duration <= 0:
            raise ProbeError(f"the probe needs a positive count and duration, got {count} and {duration}")

    async def _drive(self, count: int, duration: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        # Full (generation 2) collections walk every tracked object; with the ~100,000 a test
        # process holds after its imports they paused the probe 80-100 ms at 1,500 req/s, which
        # showed as latency on both sides. Freezing moves the objects alive now out of the
        # collector's way while the probe runs (gc.freeze); unfreeze hands them back afterwards.
        gc.freeze()
        try:
            async with self._sender_factory() as send:
                interval = 1.0 / self.rate
                start = time.monotonic()
                i = 0
                while i < count and not self._stop.is_set():
                    now = time.monotonic()
                    # dispatch everything due by now, then sleep until the next scheduled time
                    while i < count and start + i * interval <= now:
                        if i * interval >= duration:
                            count = i
                            break
                        task = asyncio.create_task(self._one(send, i, start + i * interval))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                        i += 1
                    if i >= count:
                        break
                    await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
                if tasks:
                    await asyncio.wait(set(tasks), timeout=self.timeout + 2)
        except BaseException as exc:
            self._failure = exc
        finally:
            for task in tasks:
                task.cancel()
            gc.unfreeze()

    async def _one(self, send: Sender, seq: int, scheduled: float) -> None:
        request = self.mix[seq % len(self.mix)]
        headers = dict(request.headers)
        if self.pin_y:
            headers[HEADER_PIN] = "y"
        sent = time.monotonic()
        status: int | None = None
        side: Side | None = None
        node: str | None = None
        error: str | None = None
        retries = 0
        cancelled = False
        try:
            status, response_headers, retries = await send(
                request.method, request.path, headers, request.body
            )
            side, node = attribute(response_headers, self.version_sides)
        except ProbeTransportError as exc:
            error = exc.kind
        except asyncio.CancelledError:
            # still unanswered when the run ended (timeout + 2 s after the last send): recorded,
            # not dropped, so an overloaded target or probe shows as probe errors
            error, cancelled = "cancelled", True
        except Exception as exc:
            error = f"internal:{type(exc).__name__}"
        done = time.monotonic()
        record = ProbeRecord(
            seq=seq,
            request=request.name,
            method=request.method,
            path=safe_path(request.path),
            scheduled=self._epoch(scheduled),
            sent=self._epoch(sent),
            done=self._epoch(done),
            side=side,
            node=node,
            status=status,
            latency_ms=(done - scheduled) * 1000.0,
            error=error,
            pinned=self.pin_y,
            ok=status is not None and request.accepts(status),
            retries=retries,
        )
        with self._lock:
            self._window.append(record)
            self._recent.append(record)
            self._completed += 1
        if cancelled:
            raise asyncio.CancelledError
