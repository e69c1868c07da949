"""The node's loaded configuration as an immutable snapshot: entities, hash, router, key index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.declarative import EMPTY_HASH, Entities
from emulator.router import Router
from emulator.schema import ENTITY_TYPES
from emulator.versions import KongVersion


@dataclass(frozen=True)
class Snapshot:
    entities: Entities
    config_hash: str
    router: Router
    keys: dict[str, dict[str, Any]]
    consumers: dict[str, dict[str, Any]]          # by id and by username
    keyauth: dict[tuple[str | None, str | None], dict[str, Any]]  # (route id, service id) -> plugin

    @classmethod
    def build(cls, entities: Entities, config_hash: str, version: KongVersion,
              dropped: frozenset[str] = frozenset()) -> Snapshot:
        services = entities.get("services") or {}
        router = Router(list((entities.get("routes") or {}).values()), services, version, dropped)
        keys = {cred["key"]: cred for cred in (entities.get("keyauth_credentials") or {}).values()}
        consumers: dict[str, dict[str, Any]] = {}
        for consumer in (entities.get("consumers") or {}).values():
            consumers[consumer["id"]] = consumer
            if consumer.get("username"):
                consumers.setdefault(consumer["username"], consumer)
        keyauth: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        for plugin in (entities.get("plugins") or {}).values():
            if plugin.get("name") != "key-auth" or not plugin.get("enabled", True):
                continue
            route = (plugin.get("route") or {}).get("id")
            service = (plugin.get("service") or {}).get("id")
            keyauth[(route, service)] = plugin
        return cls(entities, config_hash, router, keys, consumers, keyauth)

    @classmethod
    def empty(cls, version: KongVersion) -> Snapshot:
        return cls.build({t: {} for t in ENTITY_TYPES}, EMPTY_HASH, version)

    def keyauth_for(self, route_id: str | None, service_id: str | None) -> dict[str, Any] | None:
        """Most specific key-auth instance: route+service, route, service, then global."""
        for key in ((route_id, service_id), (route_id, None), (None, service_id), (None, None)):
            plugin = self.keyauth.get(key)
            if plugin is not None:
                return plugin
        return None
