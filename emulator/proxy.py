"""The proxy listener: route, run key-auth, forward to the service, add Kong's headers (section 6)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from emulator.keyauth import authenticate
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


class Proxy:
    """One proxy listener's request handler, reading the node's current Snapshot on each request."""

    def __init__(self, settings: Settings, snapshot: Callable[[], Snapshot]) -> None:
        self.settings = settings
        self.version = settings.version
        self.snapshot = snapshot
        self.faults = settings.faults
        self.session: aiohttp.ClientSession | None = None
        self.requests = 0
        self._rr = itertools.count()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, force_close=False)
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
        version = self.version
        faults = self.faults
        request_id = os.urandom(16).hex() if version.has_request_id else None
        accept = request.headers.get("Accept", "")
        self.requests += 1
        if faults.crash_after_requests is not None and self.requests > faults.crash_after_requests:
            print(f"emulator fault: crash after {faults.crash_after_requests} proxied requests", flush=True)
            os._exit(70)
        faulty = self.requests - faults.after_requests  # the n-th request since the faults began
        if faulty > 0 and (faults.latency_ms or faults.latency_jitter_ms):
            delay = faults.latency_ms + random.uniform(0, faults.latency_jitter_ms)
            await asyncio.sleep(delay / 1000)
        # errors are spread evenly, not drawn at random, so a rehearsal fails the same way each time
        if faulty > 0 and int(faulty * faults.error_rate) > int((faulty - 1) * faults.error_rate):
            return self._kong(500, "An unexpected error occurred", started, request_id, accept)
        snap = self.snapshot()
        headers = request.headers
        match = snap.router.find(request.method, request.path, headers.get("Host", ""), headers)
        if match is None:
            return self._kong(404, NO_ROUTE, started, request_id, accept, template=version.error_template)
        route = match.candidate.route
        service = match.candidate.service
        if service is None:
            return self._kong(503, "no Service found with those values", started, request_id, accept)
        body = await request.read() if request.body_exists else b""
        query = list(request.query.items())
        new_query: list[tuple[str, str]] | None = None
        out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)
        plugin = snap.keyauth_for(route["id"], service["id"])
        if plugin is not None and set(plugin.get("protocols") or ["http"]) & {"http", "https"}:
            outcome = authenticate(version, plugin.get("config") or {}, snap, request.method, headers, query,
                                   body, faults.keyauth)
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
        except (aiohttp.ClientError, OSError):
            return self._kong(502, "An invalid response was received from the upstream server", started,
                              request_id, accept)
        done = time.monotonic()
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
