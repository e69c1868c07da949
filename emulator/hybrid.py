"""Hybrid mode (KONG-FACTS.md section 3): the CP's cluster listener and the DP's connection to it.

Frames follow Kong's /v1/outlet protocol: the DP sends a binary JSON `basic_info`, then WebSocket
PINGs whose payload is its 32-character config hash; the CP sends gzip-compressed JSON `reconfigure`
messages. A 3.0/3.1 node's `/v1/wrpc` endpoint uses the same JSON frames here (not protobuf), which is
enough to model who can talk to whom.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from emulator.declarative import EMPTY_HASH, DeclarativeError, export, load
from emulator.node import NodeState, log
from emulator.versions import KongVersion, dp_compatibility

PURGE_DELAY = 1_209_600  # cluster_data_plane_purge_delay default, 14 days (section 1.6)
NORMAL = "normal"


def _cert_digest(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        der = ssl.PEM_cert_to_DER_cert(handle.read())
    return hashlib.sha256(der).hexdigest()


@dataclass
class Client:
    node_id: str
    version_text: str
    version: KongVersion | None
    plugins: dict[str, str]
    ws: web.WebSocketResponse
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hostname: str | None = None
    ip: str | None = None

    @property
    def log_suffix(self) -> str:
        """Kong's ` [id: .., host: .., ip: .., version: ..]` (kong/clustering/control_plane.lua @ 2.8.5)."""
        parts = [f"{label}: {value}" for label, value in (
            ("id", self.node_id), ("host", self.hostname), ("ip", self.ip), ("version", self.version_text))
            if value]
        return f" [{', '.join(parts)}]" if parts else ""


class Registry:
    """Rows of /clustering/data-planes, kept like Kong's clustering_data_planes table."""

    def __init__(self, version: KongVersion) -> None:
        self.version = version
        self.table: dict[str, dict[str, Any]] = {}

    def upsert(self, node_id: str, **fields: Any) -> None:
        row = self.table.setdefault(node_id, {"id": node_id, "config_hash": EMPTY_HASH,
                                              "sync_status": "unknown"})
        row.update(fields)
        now = int(time.time())
        row["last_seen"] = now
        row["updated_at"] = now

    def rows(self) -> list[dict[str, Any]]:
        now = int(time.time())
        out = []
        for row in self.table.values():
            item = {key: row.get(key) for key in
                    ("id", "ip", "hostname", "version", "sync_status", "config_hash", "last_seen")}
            if self.version.at_least(3, 3):
                item["updated_at"] = row.get("updated_at")
            if self.version.cp_stores_labels:
                item["labels"] = row.get("labels") or {}
            if self.version.dp_row_has_cert_details:
                item["cert_details"] = row.get("cert_details") or {}
            if self.version.dp_row_has_rpc_capabilities:
                item["rpc_capabilities"] = []
            item["ttl"] = max(0, PURGE_DELAY - (now - int(row["last_seen"])))
            out.append(item)
        return out

    def status_map(self) -> dict[str, Any]:
        return {row["id"]: {"config_hash": row["config_hash"], "hostname": row.get("hostname"),
                            "ip": row.get("ip"), "last_seen": row["last_seen"]}
                for row in self.table.values()}


class ControlPlane:
    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.version = state.version
        self.registry = Registry(state.version)
        self.clients: dict[str, Client] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._payloads: tuple[Any, dict[tuple[bool, bool], bytes]] = (None, {})
        settings = state.settings
        assert settings.cluster_cert and settings.cluster_cert_key
        self.digest = _cert_digest(settings.cluster_cert)
        state.listeners.append(self._changed)

    def ssl_context(self) -> ssl.SSLContext:
        settings = self.state.settings
        assert settings.cluster_cert and settings.cluster_cert_key
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings.cluster_cert, settings.cluster_cert_key)
        # shared mTLS: the DP presents the same certificate; it is the only one trusted, and its digest
        # is compared after the handshake as Kong does (section 3.2).
        context.load_verify_locations(settings.cluster_cert)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def app(self) -> web.Application:
        app = web.Application()
        for path in self.version.cluster_paths:
            app.router.add_get(path, self.websocket)
        return app

    def _changed(self) -> None:
        for client in list(self.clients.values()):
            task = asyncio.ensure_future(self.push(client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        node_id, node_version = query.get("node_id"), query.get("node_version")
        if not node_id or not node_version:
            return web.Response(status=400, text="node_id and node_version query arguments are required")
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None or hashlib.sha256(der).hexdigest() != self.digest:
            log("data plane presented incorrect client certificate during handshake "
                "(digest does not match the control plane certificate)")
            return web.Response(status=444)
        cert_details: dict[str, Any] = {}
        peer = ssl_object.getpeercert() if ssl_object is not None else None
        if peer and peer.get("notAfter"):
            cert_details = {"expiry_timestamp": int(ssl.cert_time_to_seconds(peer["notAfter"]))}
        # the CP's server socket also has max_payload_len = cluster_max_payload (kong/clustering/utils.lua)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=self.state.settings.max_payload)
        await ws.prepare(request)
        try:
            first = await asyncio.wait_for(ws.receive(), timeout=10)
            framed = first.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
            info = json.loads(first.data) if framed else {}
        except (TimeoutError, ValueError):
            info = {}
        if info.get("type") != "basic_info":
            log(f"data plane {node_id} did not send basic_info; closing")
            await ws.close()
            return ws
        labels = info.get("labels") or {}
        self.registry.upsert(node_id, ip=request.remote, hostname=query.get("node_hostname"),
                             version=node_version, labels=labels, cert_details=cert_details)
        problem = dp_compatibility(self.version, node_version)
        if problem is not None:
            self.registry.upsert(node_id, sync_status="kong_version_incompatible")
            log(f"unable to connect data plane {node_id}: {problem}")
            await ws.close()
            return ws
        # as the DP sent them; only ever looked up by a configured plugin's name
        plugins = cast("dict[str, str]", {p.get("name"): p.get("version", "")
                                          for p in info.get("plugins") or [] if isinstance(p, dict)})
        try:
            dp_version: KongVersion | None = KongVersion.parse(node_version.split("-")[0])
        except ValueError:
            dp_version = None
        client = Client(node_id, node_version, dp_version, plugins, ws, hostname=query.get("node_hostname"),
                        ip=request.remote)
        self.clients[node_id] = client
        log(f"data plane {node_id} ({node_version}) connected from {request.remote}")
        try:
            await self.push(client)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.PING:
                    payload = message.data.decode("utf-8", "replace") if message.data else ""
                    if len(payload) != 32:
                        log(f"data plane {node_id} sent a ping without a 32-character hash; closing")
                        break
                    self.registry.upsert(node_id, config_hash=payload)
                    await ws.pong(message.data)
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            if self.clients.get(node_id) is client:
                del self.clients[node_id]
            log(f"data plane {node_id} disconnected")
            await ws.close()
        return ws

    async def close(self) -> None:
        """Close every data plane's WebSocket (1001 going away), so the listener stops at once
        instead of waiting for the handlers (aiohttp 3.8 waits up to 60 s for them)."""
        for client in list(self.clients.values()):
            await client.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"control plane exiting")

    def _plugin_problem(self, client: Client) -> tuple[str, str] | None:
        """Section 3.3's plugin rule over the configured plugins."""
        for name in self.state.configured_plugins():
            cp_plugin = self.state.plugins.get(name, {}).get("version", "")
            dp_plugin = client.plugins.get(name)
            if dp_plugin is None:
                return ("plugin_set_incompatible",
                        f"configured {name} plugin {cp_plugin} is missing from data plane")
            cp_parts, dp_parts = cp_plugin.split("."), dp_plugin.split(".")
            if len(cp_parts) >= 2 and len(dp_parts) >= 2 and (
                    cp_parts[0] != dp_parts[0] or int(dp_parts[1]) > int(cp_parts[1])):
                return "plugin_version_incompatible", (
                    f"configured data plane {name} plugin version {dp_plugin} is different to control plane "
                    f"plugin version {cp_plugin}")
        return None

    def payload(self, client: Client) -> bytes:
        """The deflated reconfigure message for this DP's version; one per snapshot and version shape,
        shared by every DP that needs the same one (Kong caches its deflated payload the same way)."""
        snapshot = self.state.snapshot
        dp = client.version
        strip_realm = dp is not None and not dp.keyauth_has_realm
        strip_instance = dp is not None and not dp.has_instance_name
        cached_for, cache = self._payloads
        if cached_for is not snapshot:
            cache = {}
            self._payloads = (snapshot, cache)
        key = (strip_realm, strip_instance)
        if key in cache:
            return cache[key]
        table = export(snapshot.entities, self.version)
        for plugin in table.get("plugins", []):
            if strip_realm and plugin.get("name") == "key-auth" and isinstance(plugin.get("config"), dict):
                # removed_fields.lua (section 4.1); a copy: the snapshot's entities are shared
                plugin["config"] = {k: v for k, v in plugin["config"].items() if k != "realm"}
            if strip_instance:
                plugin.pop("instance_name", None)
        message = {"type": "reconfigure", "timestamp": time.time(), "config_table": table,
                   "config_hash": snapshot.config_hash,
                   "hashes": {"config": snapshot.config_hash}}
        # zlib's default level, as Kong's deflate_gzip (lua-ffi-zlib deflateGzip without a level)
        cache[key] = gzip.compress(json.dumps(message, separators=(",", ":")).encode(), compresslevel=6)
        return cache[key]

    async def push(self, client: Client) -> None:
        async with client.lock:
            problem = self._plugin_problem(client)
            if problem is not None:
                self.registry.upsert(client.node_id, sync_status=problem[0])
                log(f"unable to send updated configuration to data plane {client.node_id}: {problem[1]}")
                return
            payload = self.payload(client)
            limit = self.state.settings.max_payload
            if len(payload) > limit:
                # lua-resty-websocket's send_frame refuses a frame over max_payload_len with "payload too
                # big"; the CP's write thread returns that error and the connection is closed
                # (kong/clustering/control_plane.lua @ 2.8.5, 3.4.2, 3.9.0). The DP keeps its config.
                log("[clustering] unable to send updated configuration to data plane: payload too big"
                    + client.log_suffix)
                log(f"emulator: the deflated config is {len(payload):,} bytes, cluster_max_payload is "
                    f"{limit:,}; raise KONG_CLUSTER_MAX_PAYLOAD on the CP and its DPs")
                await client.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
                return
            try:
                await client.ws.send_bytes(payload)
            except (ConnectionError, RuntimeError) as exc:
                log(f"push to data plane {client.node_id} failed: {exc}")
                return
            self.registry.upsert(client.node_id, sync_status=NORMAL)


class DataPlane:
    """Connects to the CP, applies each reconfigure, pings its hash; keeps its config when the CP is gone."""

    def __init__(self, state: NodeState) -> None:
        self.state = state
        self.settings = state.settings
        self.version = state.version

    def ssl_context(self) -> ssl.SSLContext:
        settings = self.settings
        assert settings.cluster_cert and settings.cluster_cert_key
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(settings.cluster_cert, settings.cluster_cert_key)
        context.load_verify_locations(settings.cluster_cert)
        context.check_hostname = False  # Kong sends SNI kong_clustering and pins the shared certificate
        return context

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self.session(session)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log(f"connection to control plane {self.settings.cluster_control_plane} broken: {exc!r}")
                low, high = self.settings.reconnect_delay
                delay = random.uniform(low, high)
                log(f"reconnecting to control plane in {delay:.1f} s")
                await asyncio.sleep(delay)

    async def session(self, session: aiohttp.ClientSession) -> None:
        settings = self.settings
        query = urlencode({"node_id": settings.node_id, "node_hostname": socket.gethostname(),
                           "node_version": str(self.version)})
        ws = None
        for index, path in enumerate(self.version.dp_paths):
            url = f"wss://{settings.cluster_control_plane}{path}?{query}"
            try:
                # close timeout: the 10 s default on both aiohttp 3.8 (float) and 3.10+ (ClientWSTimeout)
                # the DP's client socket has max_payload_len = cluster_max_payload (kong/clustering/utils.lua)
                ws = await session.ws_connect(url, ssl=self.ssl_context(), max_msg_size=settings.max_payload)
                break
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 404 and index + 1 < len(self.version.dp_paths):
                    log(f"control plane has no {path}; falling back")
                    continue
                raise
        assert ws is not None
        log(f"connected to control plane {settings.cluster_control_plane}")
        info: dict[str, Any] = {
            "type": "basic_info",
            "plugins": [{"name": n, "version": m["version"]} for n, m in sorted(self.state.plugins.items())],
        }
        if self.version.dp_sends_labels:
            info["labels"] = dict(settings.dp_labels)
        if self.version.at_least(3, 4):
            info["process_conf"] = {"role": "data_plane", "database": "off"}
        await ws.send_bytes(json.dumps(info).encode())
        pinger = asyncio.ensure_future(self._pings(ws))
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    if self._reconfigure(message.data):
                        await self._ping(ws)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    log(f"[clustering] error while receiving frame from control plane: {ws.exception()}")
                    break
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    break
        finally:
            pinger.cancel()
            await ws.close()
        log("control plane closed the connection")

    def _reconfigure(self, data: bytes) -> bool:
        try:
            message = json.loads(gzip.decompress(data))
        except (OSError, ValueError) as exc:
            log(f"unable to decode a message from the control plane: {exc}")
            return False
        if message.get("type") != "reconfigure":
            return False
        try:
            loaded = load(message.get("config_table") or {}, self.version, self.state.plugins)
        except DeclarativeError as exc:
            log(f"unable to update running config: {exc}")
            return False
        self.state.apply(loaded, config_hash=message.get("config_hash") or loaded.config_hash)
        return True

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.ping((self.state.config_hash or EMPTY_HASH).encode())

    async def _pings(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await self._ping(ws)
            await asyncio.sleep(self.settings.ping_interval)
