"""The Admin API (KONG-FACTS.md section 1) for DB-less, database (traditional) and CP nodes."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from emulator.bodies import BodyTooLarge, nginx_413, read_body
from emulator.crud import DbError
from emulator.declarative import DeclarativeError, export_yaml, flat_response, load
from emulator.node import NodeState, log
from emulator.responses import admin_json, metrics_response

COLLECTIONS = {
    "services": "services", "routes": "routes", "consumers": "consumers", "plugins": "plugins",
    "key-auths": "keyauth_credentials", "upstreams": "upstreams", "certificates": "certificates",
    "snis": "snis", "ca_certificates": "ca_certificates",
}
NESTED = {  # (parent collection, child segment) -> (child type, foreign field)
    ("services", "routes"): ("routes", "service"),
    ("services", "plugins"): ("plugins", "service"),
    ("routes", "plugins"): ("plugins", "route"),
    ("consumers", "plugins"): ("plugins", "consumer"),
    ("consumers", "key-auth"): ("keyauth_credentials", "consumer"),
    ("upstreams", "targets"): ("targets", "upstream"),
    ("certificates", "snis"): ("snis", "certificate"),
}
NOT_DBLESS = "this endpoint is only available when Kong is configured to not use a database"
NOT_CP = ("this endpoint is only available when Kong is configured to run as Control Plane for the "
          "cluster")
TRUTHY = ("true", "1", "on", "yes")


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers


def not_found() -> HttpError:
    return HttpError(404, {"message": "Not found"})


def method_not_allowed() -> HttpError:
    return HttpError(405, {"message": "Method not allowed"})


def encode_offset(index: int) -> str:
    return base64.b64encode(json.dumps([index]).encode()).decode()


def decode_offset(token: str) -> int:
    try:
        value = json.loads(base64.b64decode(token.encode(), validate=True))
        return int(value[0])
    except (binascii.Error, ValueError, TypeError, IndexError, KeyError):
        raise HttpError(400, {"code": 7, "name": "invalid offset",
                              "message": f"'{token}' is not a valid offset: bad base64 encoding"}) from None


class AdminApi:
    def __init__(self, state: NodeState, dataplanes: Any = None) -> None:
        self.state = state
        self.version = state.version
        self.dataplanes = dataplanes

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        extra: dict[str, str] | None = None
        try:
            raw = await read_body(request, self.state.settings.admin_body_limit)
        except BodyTooLarge as exc:
            log(f"[admin] {exc}")  # nginx logs this at [error] and answers its own page (bodies.py)
            waited = int((time.monotonic() - started) * 1000)
            return nginx_413(f"kong/{self.version}", {"X-Kong-Admin-Latency": str(waited)})
        if request.path.rstrip("/") == "/metrics" and "prometheus" in self.state.plugins:
            return self.metrics(request, started)
        try:
            status, body, extra = await self.dispatch(request, raw)
        except HttpError as exc:
            status, body, extra = exc.status, exc.body, exc.headers
        except DbError as exc:
            status, body = exc.status, exc.body
        latency = int((time.monotonic() - started) * 1000)
        if status in (204, 304) or body is None:
            response = admin_json(self.version, status, None, latency, extra)
            response.content_type = "text/plain" if status == 415 else response.content_type
            return response
        return admin_json(self.version, status, body, latency, extra)

    def metrics(self, request: web.BaseRequest, started: float) -> web.StreamResponse:
        """The prometheus plugin's Admin API route (kong/plugins/prometheus/api.lua): GET only."""
        latency = int((time.monotonic() - started) * 1000)
        if request.method not in ("GET", "HEAD"):
            return admin_json(self.version, 405, {"message": "Method not allowed"}, latency)
        return metrics_response(self.version, self.state.metrics.render(), latency, admin=True)

    async def dispatch(self, request: web.BaseRequest, raw: bytes) -> tuple[int, Any, dict[str, str] | None]:
        parts = [quote_free(p) for p in request.path.strip("/").split("/") if p]
        method = request.method
        if method == "OPTIONS":
            return 204, None, {"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS, PATCH, POST, PUT, DELETE",
                               "Allow": "GET, HEAD, OPTIONS, PATCH, POST, PUT, DELETE"}
        if method == "HEAD":
            method = "GET"
        if not parts:
            if method != "GET":
                raise method_not_allowed()
            return 200, self.root(), None
        head = parts[0]
        if head == "status" and len(parts) == 1:
            if method != "GET":
                raise method_not_allowed()
            return 200, self.status(request), None
        if head == "config" and len(parts) == 1:
            return await self.config(request, method, raw)
        if head == "clustering" and len(parts) == 2 and parts[1] in ("data-planes", "status"):
            return self.clustering(parts[1], method, request)
        if head == "plugins" and len(parts) == 2 and parts[1] == "enabled":
            if method != "GET":
                raise method_not_allowed()
            return 200, {"enabled_plugins": sorted(self.state.plugins)}, None
        if head not in COLLECTIONS:
            raise not_found()
        etype = COLLECTIONS[head]
        if len(parts) == 1:
            return await self.collection(request, raw, method, etype, head, None)
        parent = self.lookup(etype, parts[1])
        if len(parts) == 2:
            return await self.entity(request, raw, method, etype, parent, parts[1])
        key = (head, parts[2])
        if key not in NESTED:
            raise not_found()
        if parent is None:
            raise not_found()
        child_type, fk = NESTED[key]
        if len(parts) == 3:
            return await self.collection(request, raw, method, child_type, "/".join(parts), (fk, parent["id"]))
        if len(parts) == 4:
            child = self.lookup(child_type, parts[3])
            if child is not None and (child.get(fk) or {}).get("id") != parent["id"]:
                child = None
            return await self.entity(request, raw, method, child_type, child, parts[3], (fk, parent["id"]))
        raise not_found()

    # ---- reads ----
    def lookup(self, etype: str, ref: str) -> dict[str, Any] | None:
        return self.state.find(etype, ref)

    def root(self) -> dict[str, Any]:
        state, version, settings = self.state, self.version, self.state.settings
        if version.plugin_metadata_on_root:
            available: dict[str, Any] = {name: dict(meta) for name, meta in state.plugins.items()}
        else:
            available = {name: True for name in state.plugins}
        configuration = {
            "role": settings.role, "database": settings.database,
            "admin_listen": [str(settings.admin_listen)] if settings.admin_listen else ["off"],
            "proxy_listen": [str(settings.proxy_listen)] if settings.proxy_listen else ["off"],
            "status_listen": [str(settings.status_listen)] if settings.status_listen else ["off"],
            "cluster_listen": [str(settings.cluster_listen)] if settings.cluster_listen else ["off"],
            "cluster_control_plane": str(settings.cluster_control_plane or ""),
            "cluster_cert": settings.cluster_cert, "cluster_cert_key": "******" if settings.cluster_cert_key
            else None, "cluster_mtls": "shared", "log_level": "notice", "plugins": list(settings.plugins),
            "loaded_plugins": {name: True for name in state.plugins}, "prefix": "/usr/local/kong",
            "declarative_config": settings.declarative_config, "node_id": settings.node_id,
            # kong.conf properties Kong lists here too (KONG-FACTS §9.1, §9.2)
            "nginx_admin_client_max_body_size": settings.raw.get("KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE", "10m"),
            "cluster_max_payload": settings.max_payload,
        }
        if version.major >= 3:
            configuration["router_flavor"] = "traditional_compatible"
        body: dict[str, Any] = {
            "tagline": "Welcome to kong", "version": str(version), "hostname": state.hostname,
            "node_id": settings.node_id, "timers": {"running": 0, "pending": 4},
            "plugins": {"available_on_server": available, "enabled_in_cluster": state.configured_plugins()},
            "lua_version": "LuaJIT 2.1.0-20231117", "configuration": configuration,
            "pids": {"master": 1, "workers": [2]},
        }
        if version.has_edition:
            body["edition"] = "community"
        return body

    def status(self, request: web.BaseRequest) -> dict[str, Any]:
        unit = request.query.get("unit", "m")
        if unit.lower() not in ("b", "k", "m", "g"):
            raise HttpError(400, {"message": f"invalid unit '{unit}' (expected 'k/K', 'm/M', or 'g/G')"})
        try:
            scale = int(request.query.get("scale", "2"))
        except ValueError:
            scale = 2
        return self.state.status_body(unit, scale)

    def page(self, request: web.BaseRequest, items: list[dict[str, Any]], path: str, nested: bool
             ) -> dict[str, Any]:
        query = request.query
        size_text = query.get("size")
        size = 100
        if size_text is not None:
            try:
                size = int(size_text)
            except ValueError:
                raise HttpError(400, {"code": 9, "name": "invalid size",
                                      "message": "size must be a number"}) from None
            if not 1 <= size <= 1000:
                raise HttpError(400, {"code": 9, "name": "invalid size",
                                      "message": "size must be an integer between 1 and 1000"})
        tags = query.get("tags")
        if tags:
            if "/" in tags:
                wanted = set(tags.split("/"))
                items = [i for i in items if wanted & set(i.get("tags") or [])]
            else:
                wanted = set(tags.split(","))
                items = [i for i in items if wanted <= set(i.get("tags") or [])]
        start = decode_offset(query["offset"]) if "offset" in query else 0
        chunk = items[start:start + size]
        body: dict[str, Any] = {"data": chunk, "next": None}
        if start + size < len(items):
            token = encode_offset(start + size)
            link = f"/{path}?offset={quote(token, safe='')}"
            if size_text is not None and not nested:
                link += f"&size={size}"
            if tags:
                link += f"&tags={quote(tags, safe='')}"
            body["next"] = link
            body["offset"] = token
        return body

    # ---- entities ----
    async def collection(self, request: web.BaseRequest, raw: bytes, method: str, etype: str, path: str,
                         parent: tuple[str, str] | None) -> tuple[int, Any, dict[str, str] | None]:
        if method == "GET":
            items = list((self.state.entities.get(etype) or {}).values())
            if parent is not None:
                items = [i for i in items if (i.get(parent[0]) or {}).get("id") == parent[1]]
            return 200, self.page(request, items, path, parent is not None), None
        if method != "POST":
            raise method_not_allowed()
        if self.state.db is None:
            raise HttpError(405, {"code": 12, "name": "operation unsupported",
                                  "message": f"cannot create '{etype}' entities when not using a database"})
        data = read_params(request, raw)
        forced = {parent[0]: {"id": parent[1]}} if parent else None
        entity = self.state.db.insert(etype, data, forced)
        self.state.commit()
        return 201, entity, None

    async def entity(self, request: web.BaseRequest, raw: bytes, method: str, etype: str,
                     entity: dict[str, Any] | None, ref: str, parent: tuple[str, str] | None = None
                     ) -> tuple[int, Any, dict[str, str] | None]:
        db = self.state.db
        if method == "GET":
            if entity is None:
                raise not_found()
            return 200, entity, None
        if method not in ("PUT", "PATCH", "DELETE"):
            raise method_not_allowed()
        if db is None:
            if method == "DELETE" and entity is None:
                return 204, None, None
            if method == "PATCH" and entity is None:
                raise not_found()
            verb = {"PUT": "create or update", "PATCH": "update", "DELETE": "remove"}[method]
            raise HttpError(405, {"code": 12, "name": "operation unsupported",
                                  "message": f"cannot {verb} '{etype}' entities when not using a database"})
        forced = {parent[0]: {"id": parent[1]}} if parent else None
        if method == "DELETE":
            if entity is not None:
                db.delete(etype, db.entities[etype][entity["id"]])
                self.state.commit()
            return 204, None, None
        data = read_params(request, raw)
        if method == "PATCH":
            if entity is None:
                raise not_found()
            updated = db.update(etype, db.entities[etype][entity["id"]], {**data, **(forced or {})})
        else:
            updated = db.upsert(etype, ref, data, forced)
        self.state.commit()
        return 200, updated, None

    # ---- /config ----
    async def config(self, request: web.BaseRequest, method: str, raw: bytes
                     ) -> tuple[int, Any, dict[str, str] | None]:
        state = self.state
        if method not in ("GET", "POST"):
            raise method_not_allowed()
        if not state.settings.dbless or state.settings.role == "data_plane":
            raise HttpError(400, {"message": NOT_DBLESS})
        if method == "GET":
            return 200, {"config": export_yaml(state.entities, self.version)}, None
        ctype = request.content_type.lower() if raw else ""
        table: Any = None
        text: str | None = None
        if raw and ctype == "application/json":
            try:
                params = json.loads(raw)
            except ValueError:
                raise HttpError(400, {"message": "Cannot parse JSON body"}) from None
            if isinstance(params, dict) and "_format_version" in params:
                table = params
            elif isinstance(params, dict) and isinstance(params.get("config"), str):
                text = params["config"]
            else:
                text = raw.decode("utf-8", "replace")
        elif raw and ctype in ("application/yaml", "text/yaml"):
            text = raw.decode("utf-8", "replace")
        elif raw and ctype == "application/x-www-form-urlencoded":
            text = dict(parse_qsl(raw.decode("utf-8", "replace"))).get("config")
        elif raw and ctype == "multipart/form-data":
            text = multipart_field(raw, request.headers.get("Content-Type", ""), "config")
        elif raw:
            raise HttpError(415, None)
        if table is None and not text:
            raise HttpError(400, {"message": "expected a declarative configuration"})
        try:
            if table is not None:
                loaded = load(table, self.version, state.plugins)
            else:
                assert text is not None
                if request.query.get("check_hash") == "1":
                    import hashlib

                    if hashlib.md5(text.encode()).hexdigest() == state.config_hash:
                        return 304, None, None
                loaded = state.load_text(text)
        except DeclarativeError as exc:
            body: dict[str, Any] = {
                "code": 14, "name": "invalid declarative configuration",
                "message": f"declarative config is invalid: {exc}", "fields": exc.fields,
            }
            flatten = request.query.get("flatten_errors", "").lower() in TRUTHY
            if flatten and self.version.has_flatten_errors:
                body["flattened_errors"] = exc.flattened
                body["fields"] = {k: v for k, v in exc.fields.items() if not isinstance(v, list | dict)}
            log("POST /config rejected: invalid declarative configuration")
            raise HttpError(400, body) from None
        state.apply(loaded)
        return 201, flat_response(loaded.entities), None

    # ---- /clustering ----
    def clustering(self, which: str, method: str, request: web.BaseRequest
                   ) -> tuple[int, Any, dict[str, str] | None]:
        if self.state.settings.role != "control_plane" or self.dataplanes is None:
            raise HttpError(400, {"message": NOT_CP})
        if method != "GET":
            raise method_not_allowed()
        if which == "status":
            return 200, self.dataplanes.status_map(), {"Deprecation": "true"}
        return 200, self.page(request, self.dataplanes.rows(), "clustering/data-planes", False), None


def quote_free(segment: str) -> str:
    return segment


def multipart_field(raw: bytes, content_type: str, name: str) -> str | None:
    import email.parser
    import email.policy

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return None


def read_params(request: web.BaseRequest, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    ctype = request.content_type.lower()
    if ctype == "application/json":
        try:
            data = json.loads(raw)
        except ValueError:
            raise HttpError(400, {"message": "Cannot parse JSON body"}) from None
        if not isinstance(data, dict):
            raise HttpError(400, {"message": "Cannot parse JSON body"})
        return data
    if ctype == "application/x-www-form-urlencoded":
        data = {}
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            target = data
            *path, last = key.split(".")
            for step in path:
                target = target.setdefault(step, {})
            if last.endswith("[]"):
                target.setdefault(last[:-2], []).append(value)
            elif last in target:
                existing = target[last]
                target[last] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                target[last] = _coerce(value)
        return data
    raise HttpError(415, None)


def _coerce(value: str) -> Any:
    if value.isdigit():
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value
