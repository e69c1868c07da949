"""The node's loaded configuration as an immutable snapshot: entities, hash, router, key index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.declarative import EMPTY_HASH, Entities
from emulator.router import Router
from emulator.schema import ENDPOINT_KEY, ENTITY_TYPES
from emulator.versions import KongVersion


@dataclass(frozen=True)
class Snapshot:
    entities: Entities
    config_hash: str
    router: Router
    keys: dict[str, dict[str, Any]]
    consumers: dict[str, dict[str, Any]]          # by id and by username
    keyauth: dict[tuple[str | None, str | None], dict[str, Any]]  # (route id, service id) -> plugin
    # (route id, service id) -> enabled prometheus plugin, for the metrics of each proxied request
    prometheus: dict[tuple[str | None, str | None], dict[str, Any]] = field(default_factory=dict)
    _keys: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, compare=False, repr=False)

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
        prometheus: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        for plugin in (entities.get("plugins") or {}).values():
            name = plugin.get("name")
            if name not in ("key-auth", "prometheus") or not plugin.get("enabled", True):
                continue
            if plugin.get("consumer"):
                continue  # consumer-scoped instances are not modelled (README)
            route = (plugin.get("route") or {}).get("id")
            service = (plugin.get("service") or {}).get("id")
            (keyauth if name == "key-auth" else prometheus)[(route, service)] = plugin
        return cls(entities, config_hash, router, keys, consumers, keyauth, prometheus)

    @classmethod
    def empty(cls, version: KongVersion) -> Snapshot:
        return cls.build({t: {} for t in ENTITY_TYPES}, EMPTY_HASH, version)

    def keyauth_for(self, route_id: str | None, service_id: str | None) -> dict[str, Any] | None:
        """Most specific key-auth instance: route+service, route, service, then global."""
        return _most_specific(self.keyauth, route_id, service_id)

    def prometheus_for(self, route_id: str | None, service_id: str | None) -> dict[str, Any] | None:
        """Most specific enabled prometheus instance, as Kong's plugins iterator picks it."""
        return _most_specific(self.prometheus, route_id, service_id) if self.prometheus else None

    def find(self, etype: str, ref: str) -> dict[str, Any] | None:
        """By id, else by endpoint key (consumers also by custom_id), like crud.find; the key index
        is built on first use, once per snapshot."""
        items = self.entities.get(etype) or {}
        if ref in items:
            return items[ref]
        index = self._keys.get(etype)
        if index is None:
            index = {}
            key = ENDPOINT_KEY.get(etype)
            for field_name in (key, "custom_id" if etype == "consumers" else None):
                if field_name is None:
                    continue
                for entity in items.values():
                    value = entity.get(field_name)
                    if isinstance(value, str):
                        index.setdefault(value, entity)
            self._keys[etype] = index
        return index.get(ref)


def _most_specific(table: dict[tuple[str | None, str | None], dict[str, Any]], route_id: str | None,
                   service_id: str | None) -> dict[str, Any] | None:
    for key in ((route_id, service_id), (route_id, None), (None, service_id), (None, None)):
        plugin = table.get(key)
        if plugin is not None:
            return plugin
    return None
