"""In-memory database for traditional+postgres and CP nodes: Admin API writes (KONG-FACTS.md 1.4)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from emulator.declarative import Entities, lua_pretty
from emulator.schema import ENDPOINT_KEY, FOREIGN, UNIQUE, build_entity, is_uuid
from emulator.versions import KongVersion


class DbError(Exception):
    """A Kong DAO error: HTTP status plus the Admin API error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def schema_violation(errors: dict[str, Any]) -> DbError:
    flat: list[str] = []
    for key, value in errors.items():
        if key == "@entity":
            flat.extend(str(v) for v in value)
        else:
            flat.append(f"{key}: {lua_pretty(value) if isinstance(value, dict | list) else value}")
    if len(flat) == 1:
        message = f"schema violation ({flat[0]})"
    else:
        message = f"{len(flat)} schema violations ({'; '.join(flat)})"
    return DbError(400, {"code": 2, "name": "schema violation", "message": message, "fields": errors})


def find(entities: Entities, etype: str, ref: str) -> dict[str, Any] | None:
    """By id, else by the endpoint key (name, username, key...)."""
    items = entities.get(etype) or {}
    if ref in items:
        return items[ref]
    key = ENDPOINT_KEY.get(etype)
    if key is None:
        return None
    for entity in items.values():
        if entity.get(key) == ref:
            return entity
    if etype == "consumers":
        for entity in items.values():
            if entity.get("custom_id") == ref:
                return entity
    return None


def _indexed_fields(etype: str) -> tuple[str, ...]:
    fields = list(UNIQUE.get(etype, ()))
    key = ENDPOINT_KEY.get(etype)
    if key and key not in fields:
        fields.append(key)
    return tuple(fields)


class Database:
    """Entities kept in memory as if in Postgres; every write validates like Kong's DAO.

    Unique and endpoint-key fields are indexed (value -> ids in insertion order), so a write and a lookup
    by name cost the same at 55,000 entities as at 50. Stored entity dicts are replaced, never changed in
    place, so published snapshots can share them (node.NodeState.flush).
    """

    def __init__(self, entities: Entities, version: KongVersion, plugins: dict[str, Any]) -> None:
        self.entities = entities
        self.version = version
        self.plugins = plugins
        self._index: dict[tuple[str, str], dict[Any, dict[str, None]]] = {}
        self.replace(entities)

    def replace(self, entities: Entities) -> None:
        """Swap in a whole set of entities (a declarative config loaded at start) and re-index."""
        if entities is not self.entities:
            self.entities.clear()
            self.entities.update({etype: dict(items) for etype, items in entities.items()})
        self._index = {}
        for etype, items in self.entities.items():
            for entity in items.values():
                self._add_index(etype, entity)

    def _add_index(self, etype: str, entity: dict[str, Any]) -> None:
        for name in _indexed_fields(etype):
            value = entity.get(name)
            if isinstance(value, str):
                self._index.setdefault((etype, name), {}).setdefault(value, {})[entity["id"]] = None

    def _drop_index(self, etype: str, entity: dict[str, Any]) -> None:
        for name in _indexed_fields(etype):
            value = entity.get(name)
            if isinstance(value, str):
                ids = self._index.get((etype, name), {}).get(value)
                if ids is not None:
                    ids.pop(entity["id"], None)
                    if not ids:
                        del self._index[(etype, name)][value]

    def _store(self, etype: str, entity: dict[str, Any]) -> None:
        items = self.entities.setdefault(etype, {})
        old = items.get(entity["id"])
        if old is not None:
            self._drop_index(etype, old)
        items[entity["id"]] = entity
        self._add_index(etype, entity)

    def _remove(self, etype: str, entity_id: str) -> dict[str, Any] | None:
        old = (self.entities.get(etype) or {}).pop(entity_id, None)
        if old is not None:
            self._drop_index(etype, old)
        return old

    def _ids(self, etype: str, name: str, value: Any) -> dict[str, None]:
        if not isinstance(value, str):
            return {}
        return self._index.get((etype, name), {}).get(value) or {}

    def find(self, etype: str, ref: str) -> dict[str, Any] | None:
        """By id, else by the endpoint key (consumers also by custom_id), as the module's `find`."""
        items = self.entities.get(etype) or {}
        if ref in items:
            return items[ref]
        names = [ENDPOINT_KEY[etype]] if etype in ENDPOINT_KEY else []
        if etype == "consumers":
            names.append("custom_id")
        for name in names:
            for entity_id in self._ids(etype, name, ref):
                if entity_id in items:
                    return items[entity_id]
        return None

    def _resolve_foreign(self, etype: str, entity: dict[str, Any]) -> None:
        for fk, target in FOREIGN.get(etype, {}).items():
            ref = entity.get(fk)
            if ref is None:
                if etype in ("keyauth_credentials", "targets", "snis"):
                    raise schema_violation({fk: "required field missing"})
                continue
            wanted = ref.get("id") if isinstance(ref, dict) else ref
            if isinstance(ref, dict) and wanted is None:
                wanted = ref.get(ENDPOINT_KEY.get(target, "name"))
            found = self.find(target, str(wanted))
            if found is None:
                raise DbError(400, {
                    "code": 4, "name": "foreign key violation",
                    "message": f"the foreign key '{{id=\"{wanted}\"}}' does not reference an existing "
                               f"'{target}' entity.",
                    "fields": {"@foreign": {fk: "does not reference an existing '" + target + "' entity"}},
                })
            entity[fk] = {"id": found["id"]}

    def _check_unique(self, etype: str, entity: dict[str, Any]) -> None:
        for unique in UNIQUE.get(etype, ()):
            value = entity.get(unique)
            if value is None:
                continue
            for other_id in self._ids(etype, unique, value):
                if other_id != entity["id"]:
                    raise DbError(409, {
                        "code": 5, "name": "unique constraint violation",
                        "message": f"UNIQUE violation detected on '{{{unique}=\"{value}\"}}'",
                        "fields": {unique: value},
                    })

    def insert(self, etype: str, data: dict[str, Any], forced: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        data = {**data, **(forced or {})}
        entity, errors = build_entity(etype, data, self.version, self.plugins)
        if errors:
            raise schema_violation(errors)
        if entity.get("id") is None:
            entity["id"] = str(uuid.uuid4())
        elif entity["id"] in (self.entities.get(etype) or {}):
            raise DbError(409, {"code": 3, "name": "primary key violation",
                                "message": f"primary key violation on key '{{id=\"{entity['id']}\"}}'",
                                "fields": {"id": entity["id"]}})
        self._resolve_foreign(etype, entity)
        self._check_unique(etype, entity)
        self._store(etype, entity)
        return entity

    def update(self, etype: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        merged = {k: v for k, v in current.items()}
        for key, value in changes.items():
            if key == "config" and isinstance(value, dict) and isinstance(merged.get("config"), dict):
                merged["config"] = {**merged["config"], **value}
            else:
                merged[key] = value
        if "updated_at" in merged:
            merged["updated_at"] = int(time.time())
        entity, errors = build_entity(etype, merged, self.version, self.plugins)
        if errors:
            raise schema_violation(errors)
        self._resolve_foreign(etype, entity)
        self._check_unique(etype, entity)
        self._store(etype, entity)
        return entity

    def upsert(self, etype: str, ref: str, data: dict[str, Any], forced: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        current = self.find(etype, ref)
        data = {**data, **(forced or {})}
        if current is not None:
            data["id"] = current["id"]
            data.setdefault("created_at", current.get("created_at"))
            self._remove(etype, current["id"])
            try:
                return self.insert(etype, data)
            except DbError:
                self._store(etype, current)
                raise
        if is_uuid(ref):
            data["id"] = ref
        elif ENDPOINT_KEY.get(etype):
            data[ENDPOINT_KEY[etype]] = ref
        return self.insert(etype, data)

    def delete(self, etype: str, entity: dict[str, Any]) -> None:
        """Cascade children the way Kong's schema says (on_delete cascade), restrict service deletes."""
        if etype == "services":
            for route in (self.entities.get("routes") or {}).values():
                if (route.get("service") or {}).get("id") == entity["id"]:
                    raise DbError(400, {
                        "code": 4, "name": "foreign key violation",
                        "message": "an existing 'routes' entity references this 'services' entity",
                        "fields": {"@referenced_by": {"routes": "an existing 'routes' entity references this "
                                                                 "'services' entity"}},
                    })
        self._remove(etype, entity["id"])
        for child_type, fks in FOREIGN.items():
            for fk, target in fks.items():
                if target != etype:
                    continue
                for child in list((self.entities.get(child_type) or {}).values()):
                    if (child.get(fk) or {}).get("id") == entity["id"]:
                        self.delete(child_type, child)
