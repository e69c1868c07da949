"""Declarative config: parse, migrate, validate, flatten, hash and export (KONG-FACTS.md 1.3, 5)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import yaml

from emulator import yamlout
from emulator.schema import (
    CHILDREN,
    ENDPOINT_KEY,
    ENTITY_TYPES,
    FOREIGN,
    PLAIN_PATH_RE,
    SINGULAR,
    UNIQUE,
    build_entity,
    is_uuid,
)
from emulator.versions import KongVersion

EMPTY_HASH = "0" * 32
TOP_LEVEL_KEYS = ("_format_version", "_transform", "_comment", "_ignore")
_ID_NAMESPACE = uuid.UUID("7d1e3f1e-2c7b-4a4e-9a53-6b0c6b6e6f10")

Entities = dict[str, dict[str, dict[str, Any]]]  # type -> id -> flat entity (foreign keys as {"id": ...})


class DeclarativeError(Exception):
    """An invalid declarative config: Kong's `fields` tree and the flattened per-entity list."""

    def __init__(self, fields: dict[str, Any], flattened: list[dict[str, Any]]) -> None:
        super().__init__(lua_pretty(fields))
        self.fields = fields
        self.flattened = flattened


@dataclass(frozen=True)
class Loaded:
    entities: Entities
    config_hash: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.entities.values())


def lua_pretty(value: Any) -> str:
    """A compact rendering like Kong's pl.pretty of the error table, used in `message`."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{k}={lua_pretty(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "{" + ",".join(lua_pretty(v) for v in value) + "}"
    if value is None:
        return "ngx.null"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def decode_text(text: str) -> Any:
    """JSON first, then YAML (section 1.3). Raises ValueError with Kong's parse message."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        # libyaml's parser when PyYAML has it (Debian's python3-yaml does): same results, several times faster
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ValueError(f"failed parsing declarative configuration: {exc}".replace("\n", " ")) from None


def normalise_plain_path(path: str) -> str:
    """Decode percent-encoded unreserved characters and upper-case the remaining escapes."""
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        if re.match(r"[A-Za-z0-9\-._~]", char):
            return char
        return "%" + match.group(1).upper()
    return re.sub(r"%([0-9a-fA-F]{2})", fix, path)


def migrate_paths_to_3(config: dict[str, Any]) -> None:
    """2.x files on 3.x: regex-like paths of top-level and service-nested routes get `~` (section 5)."""
    def route_list() -> list[dict[str, Any]]:
        routes = [r for r in config.get("routes") or [] if isinstance(r, dict)]
        for service in config.get("services") or []:
            if isinstance(service, dict):
                routes.extend(r for r in service.get("routes") or [] if isinstance(r, dict))
        return routes
    for route in route_list():
        paths = route.get("paths")
        if not isinstance(paths, list):
            continue
        new = []
        for path in paths:
            if not isinstance(path, str) or path.startswith("~"):
                new.append(path)
            elif PLAIN_PATH_RE.match(path):
                new.append(normalise_plain_path(path))
            else:
                new.append("~" + unquote(path) if "%" in path else "~" + path)
        route["paths"] = new
    config["_format_version"] = "3.0"


@dataclass
class _Record:
    etype: str
    entity: dict[str, Any]
    given: dict[str, Any]
    errpath: tuple[Any, ...]
    errors: dict[str, Any]


class _Loader:
    def __init__(self, version: KongVersion, plugins: dict[str, Any]) -> None:
        self.version = version
        self.plugins = plugins
        self.records: list[_Record] = []
        self.tree: dict[str, Any] = {}

    def add(self, etype: str, item: Any, errpath: tuple[Any, ...], parent: tuple[str, str] | None,
            seed: str) -> None:
        if not isinstance(item, dict):
            self.records.append(_Record(etype, {}, {}, errpath, {"@entity": ["expected a record"]}))
            return
        given = {k: v for k, v in item.items() if k not in CHILDREN.get(etype, {})}
        data = dict(given)
        if parent is not None:
            data[parent[0]] = {"id": parent[1]}
        entity, errors = build_entity(etype, data, self.version, self.plugins)
        if entity.get("id") is None or errors.get("id"):
            key = entity.get(ENDPOINT_KEY.get(etype, "")) or ""
            entity["id"] = str(uuid.uuid5(_ID_NAMESPACE, f"{etype}|{seed}|{key}"))
        self.records.append(_Record(etype, entity, given, errpath, errors))
        for child_key, fk in CHILDREN.get(etype, {}).items():
            children = item.get(child_key)
            if children is None:
                continue
            if not isinstance(children, list):
                errors[child_key] = "expected an array"
                continue
            for index, child in enumerate(children):
                self.add(child_key, child, (*errpath, child_key, index), (fk, entity["id"]),
                         f"{entity['id']}|{child_key}|{index}")

    def resolve(self) -> None:
        by_id: dict[str, dict[str, _Record]] = {t: {} for t in ENTITY_TYPES}
        by_key: dict[str, dict[str, _Record]] = {t: {} for t in ENTITY_TYPES}
        for record in self.records:
            if not record.entity:
                continue
            etype, entity = record.etype, record.entity
            if entity["id"] in by_id[etype]:
                self._error_at(record.errpath, None,
                               f"uniqueness violation: '{etype}' entity with primary key set to "
                               f"'{entity['id']}' already declared")
                continue
            by_id[etype][entity["id"]] = record
            for unique in UNIQUE.get(etype, ()):
                value = entity.get(unique)
                if value is None:
                    continue
                seen = by_key[etype].get(f"{unique}\0{value}")
                if seen is not None:
                    key = entity.get(ENDPOINT_KEY.get(etype, "")) or record.errpath[-1]
                    self._error_at((*record.errpath[:-1], key), None,
                                   f"uniqueness violation: '{etype}' entity with {unique} set to "
                                   f"'{value}' already declared")
                by_key[etype][f"{unique}\0{value}"] = record
        for record in self.records:
            for fk, target in FOREIGN.get(record.etype, {}).items():
                ref = record.entity.get(fk)
                if ref is None:
                    if record.etype in ("keyauth_credentials", "targets", "snis"):
                        record.errors[fk] = "required field missing"
                    continue
                wanted = ref
                if isinstance(ref, dict):
                    wanted = ref.get("id") or ref.get(ENDPOINT_KEY.get(target, "name"))
                found = by_id[target].get(str(wanted))
                if found is None:
                    endpoint = ENDPOINT_KEY.get(target)
                    found = by_key[target].get(f"{endpoint}\0{wanted}") if endpoint else None
                if found is None:
                    record.errors[fk] = f"invalid reference '{wanted}' (no such entry in '{target}')"
                else:
                    record.entity[fk] = {"id": found.entity["id"]}

    def _error_at(self, errpath: tuple[Any, ...], key: str | None, message: str) -> None:
        node: Any = self.tree
        for step in errpath[:-1]:
            node = node.setdefault(step, {})
        node[errpath[-1]] = message

    def build_errors(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        flattened = []
        for record in self.records:
            if not record.errors:
                continue
            node: Any = self.tree
            for step in record.errpath:
                existing = node.get(step)
                if not isinstance(existing, dict):
                    existing = node[step] = {}
                node = existing
            node.update(record.errors)
            flattened.append(_flat_entry(record))
        # uniqueness messages for records without field errors
        for record in self.records:
            if record.errors:
                continue
            node = self.tree
            for step in record.errpath:
                node = node.get(step) if isinstance(node, dict) else None
                if node is None:
                    break
            if isinstance(node, str):
                flattened.append(_flat_entry(record, entity_message=node))
        return _arrays(self.tree), flattened


def _flat_entry(record: _Record, entity_message: str | None = None) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                if key == "@entity":
                    for message in sub:
                        errors.append({"type": "entity", "message": message})
                else:
                    walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                if sub is not None:
                    walk(f"{prefix}.{index}", sub)
        else:
            errors.append({"type": "field", "field": prefix, "message": value})

    walk("", record.errors)
    if entity_message:
        errors.append({"type": "entity", "message": entity_message})
    entry: dict[str, Any] = {"entity_type": SINGULAR[record.etype], "entity": record.given,
                             "entity_tags": record.given.get("tags"), "errors": errors}
    name = record.given.get("name") or record.given.get("username")
    if name is not None:
        entry["entity_name"] = name
    if is_uuid(record.given.get("id")):
        entry["entity_id"] = record.given["id"]
    return entry


def _arrays(node: Any) -> Any:
    """Lua error tables keyed 0..n become JSON arrays with nulls in the gaps."""
    if not isinstance(node, dict):
        return node
    converted = {k: _arrays(v) for k, v in node.items()}
    if converted and all(isinstance(k, int) for k in converted):
        return [converted.get(i) for i in range(max(converted) + 1)]
    return {str(k): v for k, v in converted.items()}


def load(config: Any, version: KongVersion, plugins: dict[str, Any], raw_text: str | None = None) -> Loaded:
    """Validate a decoded declarative config; return flat entities and the config hash."""
    if not isinstance(config, dict):
        raise DeclarativeError({"error": "failed parsing declarative configuration: expected an object"}, [])
    config = json.loads(json.dumps(config, default=str))  # private deep copy, YAML dates as strings
    top: dict[str, Any] = {}
    fmt = config.get("_format_version")
    if fmt is None:
        top["_format_version"] = "required field missing"
    elif str(fmt) not in version.accepted_format_versions:
        top["_format_version"] = "expected one of: " + ", ".join(version.accepted_format_versions)
    for key in config:
        if key not in TOP_LEVEL_KEYS and key not in ENTITY_TYPES:
            top[key] = "unknown field"
    if "_transform" in config and not isinstance(config["_transform"], bool):
        top["_transform"] = "expected a boolean"
    loader = _Loader(version, plugins)
    if not top and version.major >= 3 and str(fmt) in ("1.1", "2.1"):
        migrate_paths_to_3(config)
    for etype in ENTITY_TYPES:
        items = config.get(etype)
        if items is None:
            continue
        if not isinstance(items, list):
            top[etype] = "expected an array"
            continue
        for index, item in enumerate(items):
            loader.add(etype, item, (etype, index), None, f"top|{index}")
    loader.resolve()
    tree, flattened = loader.build_errors()
    if top or tree:
        raise DeclarativeError({**tree, **top}, flattened)
    entities: Entities = {t: {} for t in ENTITY_TYPES}
    for record in loader.records:
        entities[record.etype][record.entity["id"]] = record.entity
    if raw_text is not None:
        digest = hashlib.md5(raw_text.encode()).hexdigest()
    else:
        digest = hashlib.md5(json.dumps(entities, sort_keys=True).encode()).hexdigest()
    loaded = Loaded(entities, digest, config)
    if loaded.empty:
        return Loaded(entities, EMPTY_HASH, config)
    return loaded


def flat_response(entities: Entities) -> dict[str, Any]:
    """The 201 body of POST /config: entities keyed by type, then by id, without ws_id."""
    return {etype: dict(items) for etype, items in entities.items() if items}


def export(entities: Entities, version: KongVersion) -> dict[str, Any]:
    """GET /config's flat export: foreign keys as id strings, `_transform: false` (section 1.3)."""
    out: dict[str, Any] = {"_format_version": version.export_format_version, "_transform": False}
    for etype in ENTITY_TYPES:
        items = entities.get(etype) or {}
        if not items:
            continue
        rows = []
        for entity in items.values():
            row = dict(entity)
            for fk in FOREIGN.get(etype, {}):
                if isinstance(row.get(fk), dict):
                    row[fk] = row[fk]["id"]
            rows.append(row)
        out[etype] = rows
    return out


def export_yaml(entities: Entities, version: KongVersion) -> str:
    """GET /config's YAML text (yamlout: PyYAML's block layout, written in a fraction of its time)."""
    return yamlout.dump(export(entities, version))


def section_hash(items: Any) -> str:
    if not items:
        return EMPTY_HASH
    return hashlib.md5(json.dumps(items, sort_keys=True).encode()).hexdigest()


def cp_config_hash(entities: Entities) -> str:
    """Kong's CP hash shape (section 3.4): md5 of the per-section md5s; `rest` holds the workspace."""
    named = ("routes", "services", "plugins", "upstreams", "targets")
    sections = [entities.get(name) for name in named]
    rest = {t: v for t, v in entities.items() if t not in named}
    rest["workspaces"] = {"default": {"name": "default"}}
    joined = "".join(section_hash(s) for s in sections) + section_hash(rest)
    return hashlib.md5(joined.encode()).hexdigest()
