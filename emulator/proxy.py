"""The proxy listener: route, run key-auth, forward to the service, add Kong's headers (section 6)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from emulator.bodies import BodyTooLarge, declared_too_large, read_body
from emulator.keyauth import authenticate
from emulator.metrics import Metrics, Observed
from emulator.responses import kong_response
from emulator.router import upstream_path
from emulator.settings import Settings
from emulator.state import Snapshot

HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Content-Length", "Host",
))
SKIP_AUTO = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
NO_ROUTE = "no Route matched with those values"
NAME_RESOLUTION_FAILED = "name resolution failed"


class NameResolutionFailed(OSError):
    """The service host does not resolve (NXDOMAIN or no records)."""


class KongResolver(aiohttp.ThreadedResolver):
    """The system resolver, except that names under the reserved `.invalid` TLD fail at once without a
    query (RFC 6761 section 6.4), and a name that does not exist raises NameResolutionFailed, which the
    proxy answers as Kong does (kong/runloop/balancer/init.lua @ 2.8.5, 3.4.2: "dns server error: 3 name
    error" -> 503 "name resolution failed"; KONG-FACTS 6.2, 9.4)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[Any]:
        if host.rstrip(".").lower().endswith(".invalid") or host.rstrip(".").lower() == "invalid":
            raise NameResolutionFailed(socket.EAI_NONAME, f"{host}: name error")
        try:
            return cast("list[Any]", await super().resolve(host, port, family))
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise NameResolutionFailed(exc.errno, f"{host}: {exc.strerror}") from exc
            raise


def _dns_failure(exc: BaseException) -> NameResolutionFailed | None:
    for cause in (getattr(exc, "os_error", None), exc.__cause__):
        if isinstance(cause, NameResolutionFailed):
            return cause
    return None


@dataclass
class _Seen:
    """What the metrics need to know about one request, filled in as it is handled."""

    snap: Snapshot | None = None
    route: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    consumer: str | None = None
    upstream_ms: int | None = None
    from_service: bool = False
    request_bytes: int = 0


class Proxy:
    """One proxy listener's request handler, reading the node's current Snapshot on each request."""

    def __init__(self, settings: Settings, snapshot: Callable[[], Snapshot], metrics: Metrics | None = None
                 ) -> None:
        self.settings = settings
        self.version = settings.version
        self.snapshot = snapshot
        self.metrics = metrics
        self.faults = settings.faults
        self.session: aiohttp.ClientSession | None = None
        self.requests = 0
        self._rr = itertools.count()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=False,
                                         resolver=KongResolver())
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=
                                             aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _kong(self, status: int, message: str, started: float, request_id: str | None, accept: str,
              template: bool | None = None, extra: dict[str, str] | None = None) -> web.Response:
        if template is None:
            template = self.version.upstream_error_template
        latency = int((time.monotonic() - started) * 1000)
        return kong_response(self.version, status, message, request_id=request_id, accept=accept,
                             template=template, latency_ms=latency, extra=extra)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        seen = _Seen()
        response = await self._handle(request, started, seen)
        if self.metrics is not None:
            self._log(request, response, started, seen)
        return response

    def _log(self, request: web.BaseRequest, response: web.StreamResponse, started: float, seen: _Seen) -> None:
        """The prometheus plugin's log phase for this request (metrics.py)."""
        assert self.metrics is not None
        plugin = None
        if seen.snap is not None and seen.route is not None:
            plugin = seen.snap.prometheus_for(seen.route.get("id"), (seen.service or {}).get("id"))
        request_ms = int((time.monotonic() - started) * 1000)
        upstream_ms = seen.upstream_ms if seen.from_service else None
        body = getattr(response, "body", None)
        sent = 17 + sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + 2 + (
            len(body) if isinstance(body, bytes | bytearray) else 0)
        if not seen.request_bytes:
            seen.request_bytes = _request_line_and_headers(request)
        self.metrics.observe(plugin, Observed(
            route=seen.route, service=seen.service, status=response.status,
            source="service" if seen.from_service else "kong", consumer=seen.consumer,
            request_ms=request_ms, upstream_ms=upstream_ms,
            kong_ms=max(0, request_ms - (upstream_ms or 0)), request_bytes=seen.request_bytes,
            response_bytes=sent))

    async def _handle(self, request: web.BaseRequest, started: float, seen: _Seen) -> web.StreamResponse:
        version = self.version
        faults = self.faults
        request_id = os.urandom(16).hex() if version.has_request_id else None
        accept = request.headers.get("Accept", "")
        self.requests += 1
        if faults.crash_after_requests is not None and self.requests > faults.crash_after_requests:
            print(f"emulator fault: crash after {faults.crash_after_requests} proxied requests", flush=True)
            os._exit(70)
        if declared_too_large(request, self.settings.proxy_body_limit):
            # nginx refuses it before Kong routes; the proxy's error_page gives Kong's template (6.2)
            return self._kong(413, "Payload too large", started, request_id, accept, template=True,
                              extra={"Connection": "close"})
        faulty = self.requests - faults.after_requests  # the n-th request since the faults began
        if faulty > 0 and (faults.latency_ms or faults.latency_jitter_ms):
            delay = faults.latency_ms + random.uniform(0, faults.latency_jitter_ms)
            await asyncio.sleep(delay / 1000)
        snap = seen.snap = self.snapshot()
        headers = request.headers
        match = snap.router.find(request.method, request.path, headers.get("Host", ""), headers)
        if match is not None:
            seen.route, seen.service = match.candidate.route, match.candidate.service
        # errors are spread evenly, not drawn at random, so a rehearsal fails the same way each time;
        # a Kong-made 500 after routing (as a failing plugin's), so it counts under its route's metrics
        if faulty > 0 and int(faulty * faults.error_rate) > int((faulty - 1) * faults.error_rate):
            return self._kong(500, "An unexpected error occurred", started, request_id, accept)
        if match is None:
            return self._kong(404, NO_ROUTE, started, request_id, accept, template=version.error_template)
        route = match.candidate.route
        service = match.candidate.service
        if service is None:
            return self._kong(503, "no Service found with those values", started, request_id, accept)
        try:
            body = await read_body(request, self.settings.proxy_body_limit)
        except BodyTooLarge:
            return self._kong(413, "Payload too large", started, request_id, accept, template=True,
                              extra={"Connection": "close"})
        seen.request_bytes = _request_line_and_headers(request) + len(body)
        query = list(request.query.items())
        new_query: list[tuple[str, str]] | None = None
        out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)
        plugin = snap.keyauth_for(route["id"], service["id"])
        if plugin is not None and set(plugin.get("protocols") or ["http"]) & {"http", "https"}:
            outcome = authenticate(version, plugin.get("config") or {}, snap, request.method, headers, query,
                                   body, faults.keyauth)
            consumer = outcome.set_headers.get("X-Consumer-Username")
            seen.consumer = consumer if outcome.status == 0 and isinstance(consumer, str) else None
            if outcome.status:
                extra = {"WWW-Authenticate": outcome.www_authenticate} if outcome.www_authenticate else None
                return self._kong(outcome.status, outcome.message, started, request_id, accept,
                                  template=True, extra=extra)
            for name, value in outcome.set_headers.items():
                out.popall(name, None)
                if value is not None:
                    out[name] = value
            if outcome.query is not None:
                new_query = outcome.query
            if outcome.body is not None:
                body = outcome.body
        target = self._target(service, snap)
        if target is None:
            return self._kong(503, "failure to get a peer from the ring-balancer", started, request_id,
                              accept)
        host, port = target
        path = upstream_path(match, request.path)
        raw_query = request.query_string if new_query is None else urlencode(new_query)
        scheme = "https" if service.get("protocol") in ("https", "grpcs", "wss") else "http"
        client_host = headers.get("Host", "")
        default_port = 443 if scheme == "https" else 80
        if route.get("preserve_host") and client_host:
            out["Host"] = client_host
        else:
            out["Host"] = host if port == default_port else f"{host}:{port}"
        peer = request.remote or "127.0.0.1"
        forwarded_for = headers.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
        listen_port = self.settings.proxy_listen.port if self.settings.proxy_listen else 8000
        out["X-Forwarded-Proto"] = "http"
        out["X-Forwarded-Host"] = client_host.rsplit(":", 1)[0] if client_host else ""
        out["X-Forwarded-Port"] = str(listen_port)
        out["X-Forwarded-Path"] = request.path
        if route.get("strip_path", True) and match.matched_prefix and not route["paths"][0].startswith("~"):
            out["X-Forwarded-Prefix"] = match.matched_prefix.rstrip("/") or "/"
        out["X-Real-IP"] = peer
        if request_id:
            out["X-Kong-Request-Id"] = request_id
        if version.via_with_protocol:
            via = f"{request.version.major}.{request.version.minor} kong/{version}"
            out["Via"] = f"{headers['Via']}, {via}" if "Via" in headers else via
        url = URL(f"{scheme}://{host}:{port}{quote(path, safe='/%~:@!$&()*+,;=')}"
                  + (f"?{raw_query}" if raw_query else ""), encoded=True)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=service.get("connect_timeout", 60000) / 1000,
            sock_read=service.get("read_timeout", 60000) / 1000,
        )
        sent = time.monotonic()
        assert self.session is not None
        try:
            async with self.session.request(
                request.method, url, headers=out, data=body or None, allow_redirects=False,
                timeout=timeout, skip_auto_headers=SKIP_AUTO,
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
                up_headers = upstream.headers
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return self._kong(504, "The upstream server is timing out", started, request_id, accept)
        except (aiohttp.ClientError, OSError) as exc:
            if _dns_failure(exc) is not None:
                # the balancer's DNS step, before any connection (KONG-FACTS 6.2, 9.4)
                return self._kong(503, NAME_RESOLUTION_FAILED, started, request_id, accept)
            return self._kong(502, "An invalid response was received from the upstream server", started,
                              request_id, accept)
        done = time.monotonic()
        seen.from_service = True
        seen.upstream_ms = int((done - sent) * 1000)
        response_headers = CIMultiDict(
            (k, v) for k, v in up_headers.items() if k.lower() not in HOP_BY_HOP
        )
        self._decorate(response_headers, up_headers, request_id, done - sent, sent - started)
        return web.Response(status=status, body=payload, headers=response_headers)

    def _decorate(self, out: CIMultiDict[str], upstream: Any, request_id: str | None, upstream_s: float,
                  proxy_s: float) -> None:
        version = self.version
        if version.via_with_protocol:
            own = f"1.1 kong/{version}"
            out["Via"] = f"{upstream['Via']}, {own}" if "Via" in upstream else own
            if "Server" not in upstream:
                out["Server"] = f"kong/{version}"
        else:
            out["Via"] = f"kong/{version}"
            if "Server" not in upstream:
                out["Server"] = "openresty"
        out["X-Kong-Upstream-Latency"] = str(int(upstream_s * 1000))
        out["X-Kong-Proxy-Latency"] = str(int(proxy_s * 1000))
        if request_id:
            out["X-Kong-Request-Id"] = request_id

    def _target(self, service: dict[str, Any], snap: Snapshot) -> tuple[str, int] | None:
        """Service host, or a weighted pick among the targets when the host names an upstream."""
        host = service.get("host", "")
        upstreams = snap.entities.get("upstreams") or {}
        upstream = next((u for u in upstreams.values() if u.get("name") == host), None)
        if upstream is None:
            return host, int(service.get("port") or 80)
        targets = [t for t in (snap.entities.get("targets") or {}).values()
                   if (t.get("upstream") or {}).get("id") == upstream["id"] and t.get("weight", 100) > 0]
        if not targets:
            return None
        pool = [t for t in targets for _ in range(max(1, int(t.get("weight", 100)) // 10))]
        chosen = pool[next(self._rr) % len(pool)]["target"]
        name, _, port = chosen.rpartition(":")
        return name.strip("[]"), int(port)


def _request_line_and_headers(request: web.BaseRequest) -> int:
    """About nginx's $request_length without the body: request line and header lines."""
    line = len(request.method) + len(request.raw_path) + 12
    return line + sum(len(k) + len(v) + 4 for k, v in request.raw_headers) + 2
