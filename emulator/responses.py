"""Kong-generated response bodies and headers by version (KONG-FACTS.md 4.3, 6.1, 6.2, 6.3)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulator.versions import KongVersion

JSON_TYPE = "application/json; charset=utf-8"


def compact_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def template_body(version: KongVersion, message: str, request_id: str | None,
                  accept: str) -> tuple[bytes, str]:
    """kong.response.error: JSON template (default) or text/plain, negotiated on Accept."""
    with_id = version.has_request_id and request_id is not None
    if "text/plain" in accept and "json" not in accept:
        text = f"{message}\n" + (f"request_id: {request_id}\n" if with_id else "")
        return text.encode(), "text/plain; charset=utf-8"
    quoted = json.dumps(message)
    if with_id:
        body = f'{{\n  "message":{quoted},\n  "request_id":"{request_id}"\n}}'
    else:
        body = f'{{\n  "message":{quoted}\n}}'
    return body.encode(), JSON_TYPE


def kong_response(version: KongVersion, status: int, message: str, *, request_id: str | None,
                  accept: str, template: bool, latency_ms: int, extra: dict[str, str] | None = None
                  ) -> web.Response:
    """A response Kong itself produced on the proxy (no route, 401, upstream failure, faults)."""
    if template:
        body, content_type = template_body(version, message, request_id, accept)
    else:
        body, content_type = compact_json({"message": message}), JSON_TYPE
    headers = {"Content-Type": content_type, "Server": f"kong/{version}",
               "X-Kong-Response-Latency": str(latency_ms)}
    if version.has_request_id and request_id:
        headers["X-Kong-Request-Id"] = request_id
    if extra:
        headers.update(extra)
    return web.Response(status=status, body=body, headers=headers)


def admin_json(version: KongVersion, status: int, payload: Any, latency_ms: int = 0,
               extra: dict[str, str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json; charset=utf-8", "Server": f"kong/{version}",
               "X-Kong-Admin-Latency": str(latency_ms), "Access-Control-Allow-Origin": "*"}
    if extra:
        headers.update(extra)
    body = b"" if payload is None else compact_json(payload)
    return web.Response(status=status, body=body, headers=headers)


def metrics_response(version: KongVersion, text: str, latency_ms: int, admin: bool) -> web.Response:
    """The prometheus plugin's `/metrics` (exporter.lua collect: `text/plain; charset=UTF-8`)."""
    headers = {"Content-Type": "text/plain; charset=UTF-8", "Server": f"kong/{version}"}
    if admin:
        headers["X-Kong-Admin-Latency"] = str(latency_ms)
        headers["Access-Control-Allow-Origin"] = "*"
    return web.Response(status=200, body=text.encode(), headers=headers)
