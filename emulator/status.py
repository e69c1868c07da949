"""The Status API (KONG-FACTS.md section 2): /status and /status/ready (3.3+), draining (3.9+)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from emulator.admin import AdminApi, HttpError
from emulator.bodies import read_body
from emulator.node import NodeState, log
from emulator.responses import admin_json, metrics_response


class StatusApi:
    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.version = state.version
        self._admin = AdminApi(state)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        if request.path.rstrip("/") == "/metrics" and "prometheus" in self.state.plugins:
            # kong/plugins/prometheus/status_api.lua: served for every loaded prometheus plugin
            if request.method not in ("GET", "HEAD"):
                return admin_json(self.version, 405, {"message": "Method not allowed"}, 0)
            return metrics_response(self.version, self.state.metrics.render(), 0, admin=False)
        try:
            status, body = await self.dispatch(request)
        except HttpError as exc:
            status, body = exc.status, exc.body
        latency = int((time.monotonic() - started) * 1000)
        return admin_json(self.version, status, body, latency)

    async def dispatch(self, request: web.BaseRequest) -> tuple[int, Any]:
        path = request.path.rstrip("/") or "/"
        method = "GET" if request.method == "HEAD" else request.method
        if path == "/status":
            if method != "GET":
                return 405, {"message": "Method not allowed"}
            return 200, self._admin.status(request)
        if path == "/status/ready" and self.version.has_ready_endpoint:
            if method == "POST" and self.version.has_draining:
                return await self.drain(request)
            if method != "GET":
                return 405, {"message": "Method not allowed"}
            reason = self.state.ready_reason()
            if reason is None:
                return 200, {"message": "ready"}
            return 503, {"message": reason}
        return 404, {"message": "Not found"}

    async def drain(self, request: web.BaseRequest) -> tuple[int, Any]:
        raw = (await read_body(request, None)).decode("utf-8", "replace")
        params = dict(parse_qsl(raw))
        if request.content_type == "application/json":
            import json

            try:
                params = json.loads(raw) if raw else {}
            except ValueError:
                params = {}
        if isinstance(params, dict) and params.get("status") == "draining":
            self.state.draining = True
            log("node set to draining via POST /status/ready")
            return 204, None
        return 400, None
