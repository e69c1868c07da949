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


# database mode: a burst of Admin API writes is published as one snapshot once writes pause this long,
# and at least this often while they go on (Kong's CP also coalesces CRUD events into one config push)
FLUSH_IDLE_S = 0.05
FLUSH_MAX_WAIT_S = 2.0


class NodeState:
    """Loaded config and readiness; swaps an immutable Snapshot on every change.

    DB-less and DP nodes swap the snapshot when a config is applied. Database-mode nodes (traditional with
    postgres, CP) keep their entities in `db` (read live by the Admin API) and publish a snapshot lazily:
    `snapshot` rebuilds on access when writes happened, and a debounce timer publishes a burst of writes
    once, so loading 55,000 entities entity by entity costs one rebuild, not one per write.
    """

    def __init__(self, settings: Settings) -> None:
        from emulator.metrics import Metrics

        self.settings = settings
        self.version = settings.version
        self.plugins = available_plugins(settings.version, settings.plugins)
        self.hostname = socket.gethostname()
        self.started = time.time()
        self._snapshot = Snapshot.empty(self.version)
        self.config_hash: str | None = EMPTY_HASH
        self.draining = False
        self.listeners: list[Callable[[], None]] = []
        self.metrics = Metrics(self)
        self.registry: Any = None  # a CP's hybrid.Registry of data planes, for /metrics
        self._dirty_since: float | None = None
        self._last_write = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.db: Database | None = None
        if not settings.dbless:
            self.db = Database({t: {} for t in ENTITY_TYPES}, self.version, self.plugins)
            self.commit()
            self.flush()

    @property
    def snapshot(self) -> Snapshot:
        if self._dirty_since is not None:
            self.flush()
        return self._snapshot

    @property
    def entities(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The current entities: live from the database, else the loaded snapshot's."""
        return self.db.entities if self.db is not None else self._snapshot.entities

    def find(self, etype: str, ref: str) -> dict[str, Any] | None:
        """An entity by id or endpoint key (name, username, ...), through an index."""
        if self.db is not None:
            return self.db.find(etype, ref)
        return self._snapshot.find(etype, ref)

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
        self._snapshot = Snapshot.build(loaded.entities, digest, self.version, dropped)
        self.config_hash = digest
        log(f"configuration loaded, hash {digest}")
        for callback in self.listeners:
            callback()

    # ---- database mode (traditional + postgres, CP) ----
    def commit(self) -> None:
        """After a database write: publish soon (debounced), or at the next `snapshot` read."""
        now = time.monotonic()
        self._last_write = now
        if self._dirty_since is None:
            self._dirty_since = now
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (start-up, unit tests): the next `snapshot` read publishes
            self._timer = loop.call_later(FLUSH_IDLE_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._dirty_since is None:
            return
        now = time.monotonic()
        if now - self._last_write < FLUSH_IDLE_S and now - self._dirty_since < FLUSH_MAX_WAIT_S:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_IDLE_S, self._tick)
            return
        self.flush()

    def flush(self) -> None:
        """Publish the database as a new snapshot. Stored entity dicts are never changed in place
        (crud.Database replaces them), so the snapshot shares them: copying is per type, not deep."""
        if self.db is None or self._dirty_since is None:
            return
        self._dirty_since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entities = {etype: dict(items) for etype, items in self.db.entities.items()}
        digest = cp_config_hash(entities)
        self._snapshot = Snapshot.build(entities, digest, self.version, self.settings.faults.drop_routes)
        self.config_hash = digest
        for callback in self.listeners:
            callback()

    def configured_plugins(self) -> list[str]:
        return sorted({p["name"] for p in (self.entities.get("plugins") or {}).values()})

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
        state.db.replace(loaded.entities)
        state.commit()
        state.flush()
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
        services = state.entities.get("services") or {}
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
