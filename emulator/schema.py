"""Entity schemas: fields, defaults and per-entity validation (KONG-FACTS.md sections 1.3, 1.4, 4.1, 5)."""

from __future__ import annotations

import functools
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from emulator.versions import KongVersion

ENTITY_TYPES = (
    "services", "routes", "consumers", "plugins", "keyauth_credentials",
    "upstreams", "targets", "certificates", "snis", "ca_certificates",
)
SINGULAR = {
    "services": "service", "routes": "route", "consumers": "consumer", "plugins": "plugin",
    "keyauth_credentials": "keyauth_credential", "upstreams": "upstream", "targets": "target",
    "certificates": "certificate", "snis": "sni", "ca_certificates": "ca_certificate",
}
# entity type -> {foreign field: referenced type}
FOREIGN = {
    "routes": {"service": "services"},
    "plugins": {"service": "services", "route": "routes", "consumer": "consumers"},
    "keyauth_credentials": {"consumer": "consumers"},
    "targets": {"upstream": "upstreams"},
    "snis": {"certificate": "certificates"},
}
# parent type -> {nested child array: foreign field of the child}   (section 5, "Nesting")
CHILDREN = {
    "services": {"routes": "service", "plugins": "service"},
    "routes": {"plugins": "route"},
    "consumers": {"plugins": "consumer", "keyauth_credentials": "consumer"},
    "upstreams": {"targets": "upstream"},
    "certificates": {"snis": "certificate"},
}
# the natural key usable instead of the id in Admin API paths and declarative references
ENDPOINT_KEY = {
    "services": "name", "routes": "name", "consumers": "username", "upstreams": "name",
    "snis": "name", "keyauth_credentials": "key", "targets": "target", "plugins": "instance_name",
}
UNIQUE = {
    "services": ("name",), "routes": ("name",), "consumers": ("username", "custom_id"),
    "upstreams": ("name",), "snis": ("name",), "keyauth_credentials": ("key",),
}
ALWAYS_UPDATED_AT = ("services", "routes")
HTTP_METHODS_RE = re.compile(r"^[A-Z]+$")
PLAIN_PATH_RE = re.compile(r"^[a-zA-Z0-9.\-_~/%]*$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_INT = 2**31 - 1
_NO_DEFAULT = object()

Errors = dict[str, Any]


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and UUID_RE.match(value) is not None


def pcre_to_python(pattern: str) -> str:
    """PCRE named groups (?<n>...) are written (?P<n>...) in Python's re."""
    return re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)


# ---- field checkers: each returns an error message or None ----
def _string(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    if value == "":
        return "length must be at least 1"
    return None


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            return "expected an integer"
        if not low <= value <= high:
            return f"value should be between {low} and {high}"
        return None
    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected a boolean"


def _one_of(*choices: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"expected one of: {', '.join(str(c) for c in choices)}"
        return None
    return check


def _strings(value: Any) -> str | None:
    if not isinstance(value, list):
        return "expected a set" if value is not None else None
    for item in value:
        if not isinstance(item, str):
            return "expected a string"
    return None


def _map(value: Any) -> str | None:
    return None if isinstance(value, dict) else "expected a record"


def _any(value: Any) -> str | None:
    return None


def _uuid(value: Any) -> str | None:
    return None if is_uuid(value) else "expected a valid UUID"


def _number(value: Any) -> str | None:
    return None if isinstance(value, int | float) and not isinstance(value, bool) else "expected a number"


Field = tuple[Callable[[Any], str | None], Any]  # (checker, default or _NO_DEFAULT for required)

TIMEOUT = _integer(1, MAX_INT)


@functools.lru_cache(maxsize=256)
def _fields(etype: str, version: KongVersion) -> dict[str, Field]:
    """Field checkers and defaults per entity type, in Kong's field order (cached: read-only)."""
    ts = (_number, None)
    updated = {"updated_at": ts} if (etype in ALWAYS_UPDATED_AT or version.has_updated_at_everywhere) else {}
    common_head = {"id": (_uuid, None), "created_at": ts, **updated}
    tags = {"tags": (_strings, None)}
    if etype == "services":
        return {
            **common_head, "name": (_string, None), "retries": (_integer(0, 32767), 5),
            "protocol": (_one_of("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp",
                                 "ws", "wss"), "http"),
            "host": (_string, _NO_DEFAULT), "port": (_integer(0, 65535), 80), "path": (_path_check, None),
            "connect_timeout": (TIMEOUT, 60000), "write_timeout": (TIMEOUT, 60000),
            "read_timeout": (TIMEOUT, 60000), **tags, "client_certificate": (_any, None),
            "tls_verify": (_boolean, None), "tls_verify_depth": (_integer(0, 64), None),
            "ca_certificates": (_strings, None), "enabled": (_boolean, True),
        }
    if etype == "routes":
        return {
            **common_head, "name": (_string, None), "protocols": (_strings, ["http", "https"]),
            "methods": (_methods_check, None), "hosts": (_strings, None), "paths": (_strings, None),
            "headers": (_map, None), "https_redirect_status_code": (_one_of(426, 301, 302, 307, 308), 426),
            "regex_priority": (_integer(-MAX_INT, MAX_INT), 0), "strip_path": (_boolean, True),
            "path_handling": (_one_of("v0", "v1"), "v0"), "preserve_host": (_boolean, False),
            "request_buffering": (_boolean, True), "response_buffering": (_boolean, True),
            "snis": (_strings, None), "sources": (_any, None), "destinations": (_any, None), **tags,
            "service": (_any, None),
        }
    if etype == "consumers":
        return {**common_head, "username": (_string, None), "custom_id": (_string, None), **tags}
    if etype == "plugins":
        instance = {"instance_name": (_string, None)} if version.has_instance_name else {}
        return {
            **common_head, "name": (_string, _NO_DEFAULT), **instance, "route": (_any, None),
            "service": (_any, None), "consumer": (_any, None), "config": (_map, None),
            "protocols": (_strings, ["grpc", "grpcs", "http", "https"]), "enabled": (_boolean, True), **tags,
        }
    if etype == "keyauth_credentials":
        return {
            "id": (_uuid, None), "created_at": ts, "consumer": (_any, None), "key": (_string, None),
            **tags, "ttl": (_integer(0, 100_000_000), None),
        }
    if etype == "upstreams":
        return {
            **common_head, "name": (_string, _NO_DEFAULT), "algorithm": (_one_of(
                "round-robin", "consistent-hashing", "least-connections", "latency"), "round-robin"),
            "slots": (_integer(10, 2**16), 10000), "hash_on": (_string, "none"),
            "hash_fallback": (_string, "none"), "hash_on_header": (_string, None),
            "hash_fallback_header": (_string, None), "hash_on_cookie": (_string, None),
            "hash_on_cookie_path": (_string, "/"), "healthchecks": (_map, None),
            "host_header": (_string, None), "client_certificate": (_any, None),
            "use_srv_name": (_boolean, False), **tags,
        }
    if etype == "targets":
        return {**common_head, "upstream": (_any, None), "target": (_string, _NO_DEFAULT),
                "weight": (_integer(0, 65535), 100), **tags}
    if etype == "certificates":
        return {**common_head, "cert": (_string, _NO_DEFAULT), "key": (_string, _NO_DEFAULT),
                "cert_alt": (_string, None), "key_alt": (_string, None), **tags}
    if etype == "snis":
        return {**common_head, "name": (_string, _NO_DEFAULT), "certificate": (_any, None), **tags}
    if etype == "ca_certificates":
        return {**common_head, "cert": (_string, _NO_DEFAULT), "cert_digest": (_string, None), **tags}
    raise KeyError(etype)


def _path_check(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    if not value.startswith("/"):
        return "should start with: /"
    return None


def _methods_check(value: Any) -> str | None:
    problem = _strings(value)
    if problem:
        return problem
    for method in value or ():
        if not HTTP_METHODS_RE.match(method):
            return "invalid value: " + method
    return None


# ---- plugin config schemas (only key-auth is executed; see README) ----
@functools.lru_cache(maxsize=64)
def keyauth_fields(version: KongVersion) -> dict[str, Field]:
    """key-auth config fields and defaults (section 4.1); `realm` exists from 3.7.0."""
    fields: dict[str, Field] = {
        "key_names": (_key_names_check, ["apikey"]), "hide_credentials": (_boolean, False),
        "anonymous": (_string, None), "key_in_header": (_boolean, True), "key_in_query": (_boolean, True),
        "key_in_body": (_boolean, False), "run_on_preflight": (_boolean, True),
    }
    if version.keyauth_has_realm:
        fields["realm"] = (_string, None)
    return fields


def _key_names_check(value: Any) -> str | None:
    problem = _strings(value)
    if problem:
        return problem
    if not value:
        return "length must be at least 1"
    for name in value:
        if not re.match(r"^[A-Za-z0-9_-]+$", name):
            return "bad header name '" + name + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    return None


# plugin name -> priority (2.8, 3.x). Only key-auth's numbers are sourced (section 7, 2.8 -> 3.0 item 5);
# the others are accepted as no-ops so configs that mention them load.
PLUGIN_PRIORITIES = {
    "key-auth": (1003, 1250), "basic-auth": (1001, 1100), "jwt": (1005, 1450), "oauth2": (1004, 1400),
    "hmac-auth": (1000, 1030), "ldap-auth": (1002, 1200), "rate-limiting": (901, 910),
    "acl": (950, 950), "cors": (2000, 2000), "request-termination": (2, 2),
    "request-transformer": (801, 801), "response-transformer": (800, 800), "correlation-id": (1, 100001),
    "prometheus": (13, 13), "http-log": (12, 12), "file-log": (9, 9), "ip-restriction": (990, 990),
}


def available_plugins(version: KongVersion, setting: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Plugins this node has (KONG_PLUGINS: `bundled` or names), name -> {version, priority}."""
    names: list[str] = []
    for item in setting:
        if item == "bundled":
            names.extend(PLUGIN_PRIORITIES)
        elif item != "off" and item in PLUGIN_PRIORITIES:
            names.append(item)
    result = {}
    for name in sorted(set(names)):
        priority = PLUGIN_PRIORITIES[name][1 if version.major >= 3 else 0]
        plugin_version = version.keyauth_version if name == "key-auth" else str(version)
        result[name] = {"version": plugin_version, "priority": priority}
    return result


def _check_fields(data: dict[str, Any], fields: dict[str, Field], errors: Errors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in data:
        if key not in fields:
            errors[key] = "unknown field"
    for key, (check, default) in fields.items():
        value = data.get(key)
        if value is None:
            if default is _NO_DEFAULT:
                errors[key] = "required field missing"
                continue
            value = list(default) if isinstance(default, list) else default
            out[key] = value
            continue
        problem = check(value)
        if problem:
            errors[key] = problem
        out[key] = value
    return out


def _apply_url(data: dict[str, Any], errors: Errors) -> dict[str, Any]:
    url = data.pop("url", None)
    if url is None:
        return data
    parts = urlsplit(str(url))
    if not parts.scheme or not parts.hostname:
        errors["url"] = "missing host in url"
        return data
    data.setdefault("protocol", parts.scheme)
    data.setdefault("host", parts.hostname)
    if parts.port is not None:
        data.setdefault("port", parts.port)
    elif parts.scheme in ("https", "wss", "grpcs"):
        data.setdefault("port", 443)
    if parts.path:
        data.setdefault("path", parts.path)
    return data


def _route_checks(entity: dict[str, Any], version: KongVersion, errors: Errors) -> None:
    paths = entity.get("paths") or []
    if isinstance(paths, list):
        path_errors: dict[int, str] = {}
        for index, path in enumerate(paths):
            if not isinstance(path, str):
                continue
            problem = path_problem(path, version)
            if problem:
                path_errors[index] = problem
        if path_errors:
            errors["paths"] = [path_errors.get(i) for i in range(max(path_errors) + 1)]
    protocols = set(entity.get("protocols") or [])
    if protocols & {"http", "https"} and not any(
        entity.get(k) for k in ("methods", "hosts", "headers", "paths")
    ):
        errors.setdefault("@entity", []).append(
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
            if "http" in protocols else
            "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
        )


def path_is_regex(path: str, version: KongVersion) -> bool:
    """3.x: only `~`-prefixed paths are regexes. 2.8: any path with a character outside the plain set."""
    if version.regex_needs_tilde:
        return path.startswith("~")
    return PLAIN_PATH_RE.match(path) is None


def regex_source(path: str, version: KongVersion) -> str:
    return path[1:] if version.regex_needs_tilde else path


def path_problem(path: str, version: KongVersion) -> str | None:
    if version.regex_needs_tilde:
        if not (path.startswith("/") or path.startswith("~/")):
            return "should start with: / (fixed path) or ~/ (regex path)"
    elif not path.startswith("/"):
        return "should start with: /"
    if path_is_regex(path, version):
        source = regex_source(path, version)
        try:
            re.compile(pcre_to_python(source))
        except re.error as exc:
            return f"invalid regex: '{source}' (PCRE returned: {exc})"
    return None


def _keyauth_config(config: Any, version: KongVersion, errors: Errors) -> dict[str, Any]:
    config_errors: Errors = {}
    out = _check_fields(dict(config or {}), keyauth_fields(version), config_errors)
    if config_errors:
        errors["config"] = config_errors
    return out


def build_entity(etype: str, data: dict[str, Any], version: KongVersion, plugins: dict[str, Any],
                 now: int | None = None) -> tuple[dict[str, Any], Errors]:
    """Validate one entity and fill its defaults. Foreign keys are left as given (resolved later)."""
    errors: Errors = {}
    data = dict(data)
    if etype == "services":
        data = _apply_url(data, errors)
    if etype == "plugins" and not version.has_instance_name and data.get("instance_name") is None:
        data.pop("instance_name", None)
    for stamp in ("updated_at",):
        if stamp in data and stamp not in _fields(etype, version):
            data.pop(stamp)  # tolerated from newer exports; not emitted by this version
    entity = _check_fields(data, _fields(etype, version), errors)
    now = int(time.time()) if now is None else now
    if entity.get("created_at") is None:
        entity["created_at"] = now
    if "updated_at" in entity and entity.get("updated_at") is None:
        entity["updated_at"] = entity["created_at"]
    if etype == "routes":
        _route_checks(entity, version, errors)
    elif etype == "consumers":
        if entity.get("username") is None and entity.get("custom_id") is None:
            errors.setdefault("@entity", []).append(
                "at least one of these fields must be non-empty: 'custom_id', 'username'"
            )
    elif etype == "plugins":
        name = entity.get("name")
        if isinstance(name, str) and name not in plugins:
            errors["name"] = f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
        elif name == "key-auth":
            entity["config"] = _keyauth_config(entity.get("config"), version, errors)
            if entity.get("consumer") is not None:
                errors["consumer"] = "value must be null"
        elif entity.get("config") is None:
            entity["config"] = {}
    elif etype == "keyauth_credentials":
        if entity.get("key") is None:
            entity["key"] = uuid.uuid4().hex
        if entity.get("ttl") is None:
            entity.pop("ttl", None)
    elif etype == "targets":
        target = entity.get("target")
        if isinstance(target, str) and ":" not in target.rsplit("]", 1)[-1]:
            entity["target"] = target + ":8000"
    elif etype == "ca_certificates" and isinstance(entity.get("cert"), str) and not entity.get("cert_digest"):
        entity["cert_digest"] = hashlib.sha256(entity["cert"].encode()).hexdigest()
    return entity, errors
