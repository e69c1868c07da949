"""The declared data of a Kong configuration's normal form (:mod:`harness.config`).

Normalisation is data, not branches, and this module holds all of it: which fields are volatile
(:data:`VOLATILE_FIELDS`), how kinds nest and refer to each other (:data:`NESTED_CHILDREN`,
:data:`FOREIGN_KEYS`), which defaults fill a missing field (:data:`DEFAULT_RULES`), which lists are sets
(:data:`SET_FIELDS`), how a 2.x file's regex paths are read, which fields make a natural key
(:data:`KEY_FIELDS` and the kinds keyed otherwise), and which dict keys hold secrets (:data:`SECRET_KEYS`,
:data:`SECRET_KEY_PARTS`, read by :mod:`harness.config_redact`). It imports nothing of the harness.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: fields dropped from every entity: they differ between nodes holding the same config
VOLATILE_FIELDS: frozenset[str] = frozenset({"id", "created_at", "updated_at", "ws_id"})

#: entity kinds in dependency order (parents first); other kinds are kept generically
KINDS: tuple[str, ...] = (
    "services", "routes", "consumers", "keyauth_credentials", "plugins",
    "upstreams", "targets", "certificates", "snis", "ca_certificates",
)

#: foreign-key field -> kind it refers to
FOREIGN_KEYS: Mapping[str, str] = {
    "service": "services", "route": "routes", "consumer": "consumers",
    "upstream": "upstreams", "certificate": "certificates", "client_certificate": "certificates",
}

#: nested child list name -> (child kind, foreign field pointing back at the parent)
NESTED_CHILDREN: Mapping[str, tuple[str, str]] = {
    "routes": ("routes", ""), "plugins": ("plugins", ""), "keyauth_credentials": ("keyauth_credentials", ""),
    "targets": ("targets", ""), "snis": ("snis", ""),
}

#: the kinds a foreign key can name (only these are looked up by id)
REFERRED: frozenset[str] = frozenset(FOREIGN_KEYS.values())

#: keys that can hold a nested child list or a foreign key
COLLECTED: frozenset[str] = frozenset(NESTED_CHILDREN) | frozenset(FOREIGN_KEYS)

#: a nested parent's kind -> the foreign field its children point back with (others: the kind less its "s")
PARENT_FIELD: Mapping[str, str] = {
    "services": "service", "routes": "route", "consumers": "consumer",
    "upstreams": "upstream", "certificates": "certificate",
}


@dataclass(frozen=True)
class DefaultRule:
    """A field that means ``default`` when absent: filled in where missing (``None`` defaults: dropped).

    Filling (rather than dropping) keeps diffs readable: ``services['a'].retries: 5 → 3``.
    """

    kind: str
    path: str                   # dotted path inside the entity, e.g. "config.realm"
    default: object
    plugin: str | None = None   # plugins only: the plugin name it applies to
    since: str | None = None    # Kong version that added the field, when that is why it is listed
    why: str = "schema default"


_SERVICE_DEFAULTS = {
    "protocol": "http", "port": 80, "retries": 5, "connect_timeout": 60000, "write_timeout": 60000,
    "read_timeout": 60000, "enabled": True, "tls_verify": None, "tls_verify_depth": None,
}
_ROUTE_DEFAULTS = {
    "protocols": ["http", "https"], "https_redirect_status_code": 426, "strip_path": True,
    "preserve_host": False, "request_buffering": True, "response_buffering": True,
    "regex_priority": 0, "path_handling": "v0",
}
_KEY_AUTH_DEFAULTS = {
    "config.key_names": ["apikey"], "config.hide_credentials": False, "config.key_in_header": True,
    "config.key_in_query": True, "config.key_in_body": False, "config.run_on_preflight": True,
}

#: declared defaults; a null default needs no rule (nulls are always dropped) unless a version added it
DEFAULT_RULES: tuple[DefaultRule, ...] = (
    *(DefaultRule("services", k, v) for k, v in _SERVICE_DEFAULTS.items()),
    *(DefaultRule("routes", k, v) for k, v in _ROUTE_DEFAULTS.items()),
    DefaultRule("plugins", "enabled", True),
    DefaultRule("plugins", "protocols", ["grpc", "grpcs", "http", "https"]),
    *(DefaultRule("plugins", k, v, plugin="key-auth") for k, v in _KEY_AUTH_DEFAULTS.items()),
    DefaultRule("plugins", "config.realm", None, plugin="key-auth", since="3.7.0",
                why="key-auth gained realm (null) in 3.7"),
    DefaultRule("plugins", "instance_name", None, since="3.2.0", why="plugins gained instance_name in 3.2"),
    DefaultRule("upstreams", "slots", 10000),
    DefaultRule("upstreams", "algorithm", "round-robin"),
    DefaultRule("upstreams", "hash_on", "none"),
    DefaultRule("upstreams", "hash_fallback", "none"),
    DefaultRule("upstreams", "hash_on_cookie_path", "/"),
    DefaultRule("upstreams", "use_srv_name", False),
    DefaultRule("targets", "weight", 100),
)

#: lists whose order means nothing (sorted during normalisation)
SET_FIELDS: Mapping[str, frozenset[str]] = {
    "services": frozenset({"tags", "ca_certificates"}),
    "routes": frozenset({"protocols", "methods", "hosts", "paths", "snis", "tags"}),
    "consumers": frozenset({"tags"}),
    "plugins": frozenset({"protocols", "tags"}),
    "keyauth_credentials": frozenset({"tags"}),
    "upstreams": frozenset({"tags"}),
    "targets": frozenset({"tags"}),
    "certificates": frozenset({"tags", "snis"}),
    "snis": frozenset({"tags"}),
    "ca_certificates": frozenset({"tags"}),
}

#: 2.x format files (_format_version 1.1 / 2.1): a path with a character outside this set is a regex;
#: Kong 3.x marks it with "~" when it loads such a file (route_path migration), and so does the normal form
PLAIN_PATH_2X = re.compile(r"^[a-zA-Z0-9.\-_~/%]*$")
OLD_FORMATS: frozenset[str] = frozenset({"1.1", "2.1"})

#: route fields that identify what an unnamed route matches (its fingerprint)
ROUTE_MATCH_FIELDS: tuple[str, ...] = (
    "service", "protocols", "methods", "hosts", "paths", "headers", "snis", "sources", "destinations",
    "expression",
)

#: dict keys whose string values are secrets (exact, lower-case)
SECRET_KEYS: frozenset[str] = frozenset({
    "key", "key_alt", "password", "secret", "token", "client_secret", "api_key", "apikey",
    "private_key", "access_token", "refresh_token", "provision_key", "admin_token",
    "kong_admin_token", "authorization",
})
#: substrings that make a dict key secret-bearing
SECRET_KEY_PARTS: tuple[str, ...] = ("password", "secret", "token", "private_key", "api_key")

#: kinds whose natural key is a credential's secret, or its username or client id
CREDENTIAL_KINDS: frozenset[str] = frozenset({
    "keyauth_credentials", "basicauth_credentials", "hmacauth_credentials", "jwt_secrets", "oauth2_credentials",
})
#: kinds whose natural key is not their name
KEYED_OTHERWISE: frozenset[str] = CREDENTIAL_KINDS | {
    "plugins", "consumers", "targets", "acls", "certificates", "ca_certificates"}
#: the fields a natural key is made of, by kind (others: name)
KEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "consumers": ("username", "custom_id"), "targets": ("target",), "acls": ("group",),
    "certificates": ("cert",), "ca_certificates": ("cert",),
}
#: the references that scope a plugin, in the order its key names them
PLUGIN_SCOPES: tuple[str, ...] = ("service", "route", "consumer")

