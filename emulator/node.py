"""One emulated Kong node: its settings, loaded config, listeners and background tasks."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from emulator.crud import Database
from emulator.declarative import EMPTY_HASH, DeclarativeError, Loaded, cp_config_hash, decode_text, load
from emulator.schema import ENTITY_TYPES, available_plugins
from emulator.settings import Listen, Settings
from emulator.state import Snapshot


def log(message: str) -> None:
    print(time.strftime("%Y/%m/%d %H:%M:%S") + " [emulator] " + message, flush=True)


class NodeState:
    """Loaded config and readiness; swaps an immutable Snapshot on every change."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = settings.version
        self.plugins = available_plugins(settings.version, settings.plugins)
        self.hostname = socket.gethostname()
        self.started = time.time()
        self.snapshot = Snapshot.empty(self.version)
        self.config_hash: str | None = EMPTY_HASH
        self.draining = False
        self.listeners: list[Callable[[], None]] = []
        self.db: Database | None = None
        if not settings.dbless:
            self.db = Database({t: {} for t in ENTITY_TYPES}, self.version, self.plugins)
            self.commit()

    # ---- DB-less / DP ----
    def load_text(self, text: str) -> Loaded:
        try:
            data = decode_text(text)
        except ValueError as exc:
            raise DeclarativeError({"error": str(exc)}, []) from None
        return load(data, self.version, self.plugins, raw_text=text)

    def apply(self, loaded: Loaded, config_hash: str | None = None) -> None:
        digest = config_hash or loaded.config_hash
        dropped = self.settings.faults.drop_routes
        self.snapshot = Snapshot.build(loaded.entities, digest, self.version, dropped)
        self.config_hash = digest
        log(f"configuration loaded, hash {digest}")
        for callback in self.listeners:
            callback()

    # ---- database mode (traditional + postgres, CP) ----
    def commit(self) -> None:
        assert self.db is not None
        entities = self.db.entities
        digest = cp_config_hash(entities)
        frozen = copy.deepcopy(entities)
        self.snapshot = Snapshot.build(frozen, digest, self.version, self.settings.faults.drop_routes)
        self.config_hash = digest
        for callback in self.listeners:
            callback()

    def configured_plugins(self) -> list[str]:
        return sorted({p["name"] for p in (self.snapshot.entities.get("plugins") or {}).values()})

    def ready_reason(self) -> str | None:
        """Why /status/ready would answer 503, in Kong's order (section 2); None when ready."""
        if self.draining:
            return "draining"
        if not self.settings.dbless:
            return None
        if self.config_hash is None:
            return "no configuration available (configuration hash is not initialized)"
        if self.config_hash == EMPTY_HASH:
            return "no configuration available (empty configuration present)"
        return None

    def status_body(self, unit: str = "m", scale: int = 2) -> dict[str, Any]:
        divisor = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]
        suffix = {"b": " B", "k": " KiB", "m": " MiB", "g": " GiB"}[unit.lower()]

        def size(count: int) -> str | int:
            if unit.lower() == "b":
                return count
            return f"{count / divisor:.{scale}f}{suffix}"

        body: dict[str, Any] = {
            "memory": {
                "workers_lua_vms": [{"http_allocated_gc": size(3_000_000), "pid": os.getpid()}],
                "lua_shared_dicts": {
                    "kong": {"allocated_slabs": size(40960), "capacity": size(5 * 1024**2)},
                    "kong_db_cache": {"allocated_slabs": size(790528), "capacity": size(128 * 1024**2)},
                },
            },
            "server": {
                "connections_active": 1, "connections_reading": 0, "connections_writing": 1,
                "connections_waiting": 0, "connections_accepted": 1, "connections_handled": 1,
                "total_requests": 1,
            },
        }
        if not self.settings.dbless or self.version.dbless_status_has_database:
            body["database"] = {"reachable": True}
        if self.settings.dbless:
            body["configuration_hash"] = self.config_hash or EMPTY_HASH
        return body


async def start_site(handler: Any, listen: Listen, ssl_context: Any = None) -> web.BaseRunner:
    if isinstance(handler, web.Application):
        runner: web.BaseRunner = web.AppRunner(handler, access_log=None)
    else:
        runner = web.ServerRunner(web.Server(handler, access_log=None))
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port, ssl_context=ssl_context, backlog=1024)
    await site.start()
    return runner


def load_start_config(state: NodeState, path: str) -> None:
    """KONG_DECLARATIVE_CONFIG at start: a load error stops the node like Kong's `kong start`."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SystemExit(f"Error: could not read KONG_DECLARATIVE_CONFIG {path!r}: {exc}") from None
    try:
        loaded = state.load_text(text)
    except DeclarativeError as exc:
        raise SystemExit(f"Error: failed loading declarative config {path!r}: {exc}") from None
    if state.db is not None:
        state.db.entities.clear()
        state.db.entities.update(copy.deepcopy(loaded.entities))
        state.commit()
    else:
        state.apply(loaded)


def crash_later(seconds: float) -> None:
    def crash() -> None:
        log(f"emulator fault: crash after {seconds} s")
        sys.stdout.flush()
        os._exit(70)
    asyncio.get_running_loop().call_later(seconds, crash)


def drift_later(state: NodeState, seconds: float) -> None:
    """The config-drift fault: one service changes as if someone wrote config to this node."""
    def drift() -> None:
        services = state.snapshot.entities.get("services") or {}
        if not services:
            log("emulator fault: config drift found no service to change")
            return
        entities = copy.deepcopy(state.snapshot.entities)
        victim = sorted(entities["services"].values(), key=lambda s: s.get("name") or s["id"])[0]
        victim["retries"] = (victim.get("retries") or 0) + 1
        if "updated_at" in victim:
            victim["updated_at"] = int(time.time())
        digest = hashlib.md5(json.dumps(entities, sort_keys=True).encode()).hexdigest()
        log(f"emulator fault: config drift changed service {victim.get('name') or victim['id']} (retries)")
        state.apply(Loaded(entities, digest))
    asyncio.get_running_loop().call_later(seconds, drift)
