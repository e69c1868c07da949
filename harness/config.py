"""Capture, normalise, diff and redact Kong configurations.

One normalised form for every source: a nested declarative file (``services[].routes`` ...), the flat
``GET /config`` export of a DB-less node, and the entity listing of a CP or database-mode node. In it:

- entities are keyed by natural keys (service name; route name or a fingerprint of what it matches;
  consumer username or custom_id; plugin ``name@scope``; credential ``sha256:<prefix of the key's
  hash>``), never by id;
- ids, timestamps and workspace ids are dropped, foreign keys become natural keys;
- set-like lists are sorted, nulls and declared defaults (including fields later Kong versions added,
  such as key-auth ``realm``) are dropped, so a minimal file and a full export compare equal;
- secrets are redacted (``<redacted:sha256-8>``): a normalised config can be rendered or written.

Normalisation is data (:data:`VOLATILE_FIELDS`, :data:`DEFAULT_RULES`, :data:`SET_FIELDS`), not branches.
The diff compares entities with ``==`` and runs deepdiff only on those that differ (TOOLING.md).
"""

from __future__ import annotations

import copy
import functools
import gc
import hashlib
import html
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

from deepdiff import DeepDiff

from harness.deadline import Deadline
from harness.errors import ConfigError

# ---------------------------------------------------------------------------------------------------
# Declared normalisation data

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
_REFERRED: frozenset[str] = frozenset(FOREIGN_KEYS.values())

#: keys that can hold a nested child list or a foreign key
_COLLECTED: frozenset[str] = frozenset(NESTED_CHILDREN) | frozenset(FOREIGN_KEYS)

_PARENT_FIELD: Mapping[str, str] = {
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
    default: Any
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

# ---------------------------------------------------------------------------------------------------
# Redaction

#: values with nothing inside them (checked before Mapping: an ABC isinstance check is slow)
_LEAVES: tuple[type, ...] = (str, int, float, type(None))


def fingerprint(value: str) -> str:
    """First 8 hex characters of the value's sha256: identifies a secret without revealing it."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def redacted(value: str) -> str:
    return f"<redacted:{fingerprint(value)}>"


#: dict keys found not to be secret (bounded like the cache below): ``k not in _PLAIN_KEYS`` is much
#: cheaper than a call, and almost every key a config has is plain
_PLAIN_KEYS: set[str] = set()


@functools.lru_cache(maxsize=4096)
def _is_secret_key(name: str) -> bool:
    lower = name.lower()
    secret = lower in SECRET_KEYS or any(part in lower for part in SECRET_KEY_PARTS)
    if not secret and len(_PLAIN_KEYS) < 4096:
        _PLAIN_KEYS.add(name)
    return secret


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with every secret string value replaced by ``<redacted:sha256-8>``.

    Secret values are the string values (or lists of strings) under keys such as key, password,
    secret, token, client_secret; numbers and booleans stay (``token_expiration: 7200`` is not secret).
    """
    if isinstance(obj, _LEAVES):     # most values: skip the (slow) abstract-class checks below
        return obj
    if isinstance(obj, list | tuple):
        return [redact(i) for i in obj]
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k not in _PLAIN_KEYS and _is_secret_key(str(k)):
                out[k] = _redact_secret(v)
            else:                    # an exact-type test first: a call per leaf value costs more
                out[k] = v if type(v) in _EXACT_LEAVES else redact(v)
        return out
    return obj


#: the exact types of :data:`_LEAVES` values (and bool), for a set lookup instead of isinstance
_EXACT_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _redact_secret(value: Any) -> Any:
    """``value`` found under a secret key, redacted: a string, each string of a list, else recursively."""
    if isinstance(value, str):
        return value if value.startswith("<redacted:") else redacted(value)
    if isinstance(value, list) and all(isinstance(i, str) for i in value):
        return [i if i.startswith("<redacted:") else redacted(i) for i in value]
    return redact(value)


def _redact_owned(obj: dict[str, Any] | list[Any]) -> None:
    """:func:`redact` in place, for a container normalisation built itself (its dicts and lists are
    its own, so they need not be copied again); other containers inside are replaced by redact's copy."""
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if type(v) is dict or type(v) is list:
                _redact_owned(v)
            elif type(v) not in _EXACT_LEAVES:
                obj[i] = redact(v)
        return
    for k, v in obj.items():         # values are replaced, never added or removed: safe while iterating
        if k not in _PLAIN_KEYS and _is_secret_key(str(k)):
            obj[k] = _redact_secret(v)
            continue
        t = type(v)
        if t in _EXACT_LEAVES:       # most values
            continue
        if t is dict or t is list:
            _redact_owned(v)
        else:
            obj[k] = redact(v)


# ---------------------------------------------------------------------------------------------------
# Templates


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_declarative(template_text: str, upstream_url: str | None) -> str:
    """Substitute ``${UPSTREAM_URL}`` in a declarative config template.

    Raises :class:`ConfigError` for any other placeholder, or when the template needs an upstream and
    none (or not an http(s) URL) was given.
    """
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template_text)} - {"UPSTREAM_URL"})
    if unknown:
        raise ConfigError(
            f"config template uses unknown placeholder(s) {', '.join('${' + u + '}' for u in unknown)}; "
            "only ${UPSTREAM_URL} is filled in",
            hint="replace them with literal values in the config file",
        )
    if "${UPSTREAM_URL}" in template_text:
        if not upstream_url or not re.match(r"^https?://[^/\s]+", upstream_url):
            raise ConfigError(
                f"config template needs ${{UPSTREAM_URL}} but the upstream URL is {upstream_url!r}; "
                "expected http://host:port",
                hint="set config.upstream: echo in the plan so the harness runs the echo upstream",
            )
        template_text = template_text.replace("${UPSTREAM_URL}", upstream_url.rstrip("/"))
    return template_text


# ---------------------------------------------------------------------------------------------------
# Normal form


@dataclass(frozen=True)
class NormalConfig:
    """A configuration in normal form: ``entities[kind][natural key] -> normalised entity``."""

    entities: Mapping[str, Mapping[str, Mapping[str, Any]]]
    format_version: str | None = None
    source: str = "declarative"

    def count(self) -> int:
        return sum(len(v) for v in self.entities.values())

    def kinds(self) -> list[str]:
        return [k for k in self.entities if self.entities[k]]

    def keys(self, kind: str) -> list[str]:
        return sorted(self.entities.get(kind, {}))

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        return self.entities.get(kind, {}).get(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "source": self.source,
            "entities": {k: {n: copy.deepcopy(dict(e)) for n, e in sorted(v.items())}
                         for k, v in self.entities.items() if v},
        }


_Fill = tuple[str | None, list[str], Any]     # (plugin it applies to or None, path parts, default)


@dataclass(frozen=True)
class _KindPlan:
    """What normalising one kind of entity needs, worked out once per kind from the declared data."""

    sets: frozenset[str]          # its set-like lists (:data:`SET_FIELDS`)
    top_keys: frozenset[str]      # fields of the rules for every entity of the kind with a one-part path
    fills: tuple[_Fill, ...]      # the default rules that fill something, in declared order
    other: tuple[_Fill, ...]      # all but those of top_keys, in declared order
    late: frozenset[str]          # fields finished only once the defaults are in: those a nested default
    #                               fills into, and routes' headers (sorted before they are redacted)
    name_kept: bool               # no rule fills "name" (so rules for one plugin may read it once)
    per_plugin: bool              # some rule applies to one plugin only (reads the plugin's name)


@functools.cache
def _plan(kind: str) -> _KindPlan:
    # the rules that fill something (null defaults do not)
    fills = [(r.plugin, r.path.split("."), r.default) for r in DEFAULT_RULES
             if r.kind == kind and r.default is not None]
    top = [(plugin, path, d) for plugin, path, d in fills if plugin is None and len(path) == 1]
    late = {path[0] for _, path, _ in fills if len(path) > 1} | ({"headers"} if kind == "routes" else set())
    return _KindPlan(SET_FIELDS.get(kind, frozenset()), frozenset(path[0] for _, path, _ in top), tuple(fills),
                     tuple(rule for rule in fills if rule not in top), frozenset(late),
                     all(path[0] != "name" for _, path, _ in fills), any(p is not None for p, _, _ in fills))


def _taken(kind: str, k: str, v: Any) -> str | None:
    """Whether field ``k`` of a ``kind`` entry is a nested child list ("child"), a foreign key ("ref") or
    neither (None). Under a consumer any list of mappings is a child list (acls, basicauth_credentials, ...)."""
    if (((k in NESTED_CHILDREN and kind != k) or (kind == "consumers" and v))
            and isinstance(v, list) and all(isinstance(i, Mapping) for i in v)):
        return "child"
    if k in FOREIGN_KEYS and kind != FOREIGN_KEYS[k]:
        return "ref"
    return None


#: the references of an entity that has none, and their keys (shared: never written to)
_NO_REFS: Mapping[str, Any] = MappingProxyType({})
_NO_REF_KEYS: dict[str, str] = {}
#: :func:`_dropped` by what was taken out (bounded like the caches above)
_DROPPED: dict[tuple[str, ...], frozenset[str]] = {}


def _dropped(taken: tuple[str, ...]) -> frozenset[str]:
    """The fields an entity's normal form leaves out: volatile ones and those taken out while collecting."""
    drop = VOLATILE_FIELDS.union(taken)
    if len(_DROPPED) < 1024:
        _DROPPED[taken] = drop
    return drop


#: kinds whose entries :func:`_own_fields` rewrites before their fields are normalised
_REWRITTEN: frozenset[str] = frozenset({"services", "certificates", "keyauth_credentials"})   # (routes: 2.x)


def _own_fields(kind: str, src: Mapping[str, Any], drop: frozenset[str], plan: _KindPlan,
                old_format: bool) -> tuple[dict[str, Any], Sequence[str], str | None]:
    """An entry's own fields in normal form (all but references and defaults), the fields left empty
    (:func:`_normal_fields`) and, for a key-auth credential, its key's fingerprint."""
    body: dict[str, Any] = {}
    fp = None
    # the few kind-specific rewrites first, on a copy of the entry
    if kind == "services" and isinstance(src.get("url"), str):
        # the url's parts come first; a part the entity sets to null is dropped, not taken from the url
        body = {k: v for k, v in _expand_url(src["url"]).items() if not (k in src and src[k] is None)}
        drop = drop | {"url"}
    elif kind == "routes" and old_format and isinstance(src.get("paths"), list):
        src = {**src, "paths": [f"~{p}" if isinstance(p, str) and not PLAIN_PATH_2X.match(p) else p
                                for p in src["paths"]]}
    elif kind == "certificates" and isinstance(src.get("snis"), list) and "snis" not in drop:
        names = [s for s in src["snis"] if isinstance(s, str)]
        src = {**src, "snis": names or src["snis"]}
    elif kind == "keyauth_credentials" and src.get("key") is not None:
        secret = src["key"]
        if type(secret) not in _EXACT_LEAVES:
            secret = redacted(str(_drop_nulls(secret)))
        elif secret:                 # what the natural key fingerprints too: once
            fp = fingerprint(str(secret))
            secret = f"<redacted:{fp}>"
        else:
            secret = redacted(str(secret))
        src = {**src, "key": secret}
    return body, _normal_fields(src, drop, plan, body), fp


@dataclass(slots=True)
class _Raw:
    kind: str
    item: Mapping[str, Any]       # the entry as written
    drop: frozenset[str]          # its fields that are not the entity's own: volatile, child lists, foreign keys
    refs: Mapping[str, Any]       # foreign field -> _Raw (nested parent) | str | {"id"/"name": ...}
    ident: Any                    # its "id" (kept for the kinds a foreign key can name: :data:`_REFERRED`)
    # its own fields in normal form (:func:`_own_fields`), built while collecting, when the entry was
    # last read (a large config's entries are far apart in memory: each is read once), and the empty ones
    body: dict[str, Any]
    empty: Sequence[str]
    fp: str | None                # key-auth: the fingerprint of its key
    failed: Exception | None      # what building the body raised: raised when the entity is built
    plan: _KindPlan
    key: str | None = None        # natural key, filled in by _Normaliser
    ref_keys: dict[str, str] | None = None   # foreign field -> natural key, filled in with key
    normal: dict[str, Any] | None = None     # the normalised entity, once built


class _Normaliser:
    def __init__(self, declarative: Mapping[str, Any]) -> None:
        self.old_format = str(declarative.get("_format_version")) in OLD_FORMATS
        self.rewritten = _REWRITTEN | {"routes"} if self.old_format else _REWRITTEN
        self.raws: dict[str, list[_Raw]] = {}
        self.by_ref: dict[str, dict[str, _Raw]] = {}       # built for a kind when something refers to it
        for kind, items in declarative.items():
            if str(kind).startswith("_") or not isinstance(items, list) or not items:
                continue
            kind = str(kind)
            raws, plan = self.raws.setdefault(kind, []), _plan(kind)
            for item in items:
                self._collect(kind, item, None, raws, plan)

    def _collect(self, kind: str, item: object, parent: _Raw | None, raws: list[_Raw], plan: _KindPlan) -> None:
        if type(item) is not dict and not isinstance(item, Mapping):     # (the ABC test is slow)
            raise ConfigError(
                f"{kind} entry is {type(item).__name__} {item!r:.80}; expected a mapping of fields",
                hint="check the indentation of the declarative file",
            )
        # (containers made only when needed: most entities have no children, many no references)
        children: list[tuple[str, list[Any]]] | None = None
        refs: dict[str, Any] | None = None
        taken: tuple[str, ...] = ()
        # child lists and foreign keys are taken out: only _COLLECTED keys can be those, except under a
        # consumer (any list of mappings, under any name)
        if kind == "consumers":
            for k, v in item.items():
                if k in FOREIGN_KEYS or isinstance(v, list):
                    what = _taken(kind, k, v)
                    if what is not None:
                        taken += (k,)
                        if what == "child":
                            children = [(k, v)] if children is None else [*children, (k, v)]
                        elif v is not None:
                            refs = {k: v} if refs is None else {**refs, k: v}
        else:
            for k in _COLLECTED.intersection(item):
                v = item[k]
                if k in FOREIGN_KEYS:        # (then not a child list: no child kind is a foreign key)
                    if kind != FOREIGN_KEYS[k]:
                        taken += (k,)
                        if v is not None:
                            refs = {k: v} if refs is None else {**refs, k: v}
                elif kind != k and isinstance(v, list) and all(isinstance(i, Mapping) for i in v):
                    taken += (k,)
                    children = [(k, v)] if children is None else [*children, (k, v)]
            # in the entry's order: the order of the references is that of the entity's fields
            if refs is not None and len(refs) > 1:
                refs = {k: refs[k] for k in item if k in refs}
            if children is not None and len(children) > 1:
                order = list(item)
                children.sort(key=lambda child: order.index(child[0]))
        drop = VOLATILE_FIELDS if not taken else _DROPPED.get(taken) or _dropped(taken)
        try:
            if kind in self.rewritten:
                body, empty, fp = _own_fields(kind, item, drop, plan, self.old_format)
            else:
                body, fp = {}, None
                empty = _normal_fields(item, drop, plan, body)
            failed = None
        except Exception as exc:     # raised where building the entity would raise it
            body, empty, fp, failed = {}, (), None, exc
        if parent is not None:
            refs = {} if refs is None else refs
            refs[_PARENT_FIELD.get(parent.kind, parent.kind.rstrip("s"))] = parent
        raw = _Raw(kind, item, drop, _NO_REFS if refs is None else refs,
                   item.get("id") if kind in _REFERRED else None, body, empty, fp, failed,
                   plan, _own_key(kind, body) if refs is None and failed is None else None)
        raws.append(raw)
        for child_kind, items in children or ():
            if not items:
                continue
            child_raws, child_plan = self.raws.setdefault(child_kind, []), _plan(child_kind)
            for child in items:
                self._collect(child_kind, child, raw, child_raws, child_plan)

    def _index(self, kind: str) -> dict[str, _Raw]:
        """The entities of ``kind`` by id, name, username and custom_id (the first entity to use a value)."""
        index = self.by_ref.get(kind)
        if index is not None:
            return index
        raws = self.raws.get(kind, [])
        index = self.by_ref[kind] = {}
        if all(raw.failed is None for raw in raws):
            # one field at a time (the first entity wins, so the later ones are written first): when no
            # value is used by two fields, that is the whole index; the body holds the same strings as
            # the entry (it drops only what is not the entity's own)
            last_first = raws[::-1]
            parts = [{v: raw for raw in last_first if (v := raw.ident) and isinstance(v, str)}]
            parts += [{v: raw for raw in last_first if (v := raw.body.get(f)) and isinstance(v, str)}
                      for f in ("name", "username", "custom_id")]
            for part in parts:
                index.update(part)
            if len(index) == sum(len(part) for part in parts):
                return index
            index.clear()
        for raw in raws:
            body = raw.body if raw.failed is None else _written_body(raw)
            for value in (raw.ident, body.get("name"), body.get("username"), body.get("custom_id")):
                if value and isinstance(value, str):
                    index.setdefault(value, raw)
        return index

    def resolve(self, owner: _Raw, field_name: str, ref: Any) -> _Raw:
        if isinstance(ref, _Raw):
            return ref
        kind = FOREIGN_KEYS.get(field_name, field_name + "s")
        if type(ref) is str:         # the usual id string: look it up directly
            found_by_id = self._index(kind).get(ref)
            if found_by_id is not None:
                return found_by_id
        token = ref
        if isinstance(ref, Mapping):
            token = ref.get("id") or ref.get("name") or ref.get("username") or ref.get("custom_id")
        found = self._index(kind).get(str(token)) if token is not None else None
        if found is None:
            raise ConfigError(
                f"{owner.kind} entity {_describe(owner)} refers to {field_name} {token!r}, "
                f"which is not among the config's {kind}",
                hint="the config is incomplete or its foreign keys are broken; re-export it from the node",
            )
        return found

    def natural_key(self, raw: _Raw, seen: frozenset[int] = frozenset()) -> str:
        if raw.key is not None:
            return raw.key
        if seen and id(raw) in seen:
            raise ConfigError(f"circular reference at {raw.kind} {_describe(raw)}")
        refs = raw.ref_keys
        if refs is None:
            refs = self._ref_keys(raw, seen) if raw.refs else _NO_REF_KEYS
            raw.ref_keys = refs
        if raw.fp is not None:       # a key-auth credential's key, fingerprinted while collecting
            raw.key = f"sha256:{raw.fp}"
            return raw.key
        # the fields a key is made of, as written: the body holds the same leaves (bar secrets); a
        # container there is a copy (without nulls), so then the entry's fields are read
        key: str
        if raw.kind in _KEYED_OTHERWISE:
            key = _other_key(raw, refs)
        else:                        # by name (unnamed routes: by what they match)
            name = raw.body.get("name")
            if raw.failed is not None or type(name) not in _EXACT_LEAVES:
                name = _written_body(raw).get("name")
            if name:
                key = str(name)
            elif raw.kind == "routes":
                normal = self.entity(raw)          # defaults filled, sets sorted, refs as natural keys
                match = {f: normal[f] for f in ROUTE_MATCH_FIELDS if f in normal}
                key = "~" + hashlib.sha256(_canonical(match).encode()).hexdigest()[:12]
            else:
                key = _fingerprint_of(self.entity(raw), {})
        raw.key = key
        return key

    def _ref_keys(self, raw: _Raw, seen: frozenset[int]) -> dict[str, str]:
        """The natural keys of the entities ``raw`` refers to, by foreign field (kept on ``raw``)."""
        if raw.ref_keys is None:
            if not raw.refs:
                raw.ref_keys = _NO_REF_KEYS
                return _NO_REF_KEYS
            keys: dict[str, str] = {}
            inner: frozenset[int] | None = None
            for f, r in raw.refs.items():
                # the usual case inline: an id string (or the nested parent) of an entity already keyed
                if type(r) is str:
                    kind = FOREIGN_KEYS.get(f) or f + "s"
                    target = (self.by_ref.get(kind) or self._index(kind)).get(r)
                else:
                    target = r if type(r) is _Raw else None
                if target is not None and target.key is not None:
                    keys[f] = target.key
                else:
                    inner = seen | {id(raw)} if inner is None else inner
                    keys[f] = self.natural_key(self.resolve(raw, f, r), inner)
            raw.ref_keys = keys
        return raw.ref_keys

    def entity(self, raw: _Raw) -> dict[str, Any]:
        """The normalised entity, built once: a new dict (its own fields were put in normal form while
        collecting), so nothing in it is shared with the declarative input."""
        if raw.normal is not None:
            return raw.normal
        if raw.failed is not None:
            raise raw.failed
        kind, body, empty, plan = raw.kind, raw.body, raw.empty, raw.plan
        ref_keys = raw.ref_keys if raw.ref_keys is not None else self._ref_keys(raw, frozenset())
        if ref_keys:
            body.update(ref_keys)
            for f in ref_keys:
                if f not in _PLAIN_KEYS and _is_secret_key(f):
                    body[f] = _redact_secret(body[f])
        filled: list[str] | None = None
        if plan.fills:
            name = body.get("name") if plan.per_plugin else None
            # an export carries every top-level defaulted field: then only the other rules can fill one
            for plugin, path, default in plan.other if plan.top_keys <= body.keys() else plan.fills:
                if plugin is None or plugin == (name if plan.name_kept else body.get("name")):
                    if len(path) > 1:
                        _fill_default(body, path, default)
                    elif path[0] not in body:
                        body[path[0]] = default if type(default) in _EXACT_LEAVES else copy.deepcopy(default)
                        filled = [path[0]] if filled is None else [*filled, path[0]]
        # what the pass above left for now (each field on its own: in any order): the fields defaults
        # filled, and plan.late (copied only)
        late: Iterable[str] = plan.late.intersection(body) if plan.late else filled or ()
        if filled and plan.late:
            late = [*filled, *late]
        if late:                     # (routes' headers are in plan.late)
            for k in late:
                _sort_set(body, k, plan.sets)
            headers = body.get("headers") if kind == "routes" else None
            if headers is not None and isinstance(headers, Mapping):
                body["headers"] = {k: sorted(v, key=_sort_key) if isinstance(v, list) else v
                                   for k, v in sorted(headers.items())}
            for k in late:
                if k in body:
                    _finish_field(body, k)
        for k in empty:              # empty lists and mappings mean none (a default may have filled one)
            v = body.get(k)
            if (type(v) is list or type(v) is dict) and not v:
                del body[k]
        raw.normal = body
        return body

    def normal(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        ordered = [k for k in KINDS if k in self.raws] + sorted(k for k in self.raws if k not in KINDS)
        for kind in ordered:
            bucket = out.setdefault(kind, {})
            for raw in self.raws[kind]:
                key = raw.key if raw.key is not None else self.natural_key(raw)
                entity = raw.normal if raw.normal is not None else self.entity(raw)
                first = bucket.setdefault(key, entity)
                if first is not entity:        # a second entity with the key: the same one, or an error
                    if first != entity:
                        raise ConfigError(
                            f"two different {kind} entities share the natural key {key!r}",
                            hint="give the entities distinct names; the harness compares them by name",
                        )
                    bucket[key] = entity       # (the later of two equal ones, as written)
        return out


def _normal_fields(src: Mapping[str, Any], drop: frozenset[str], plan: _KindPlan,
                   body: dict[str, Any]) -> Sequence[str]:
    """One pass over an entry's fields into ``body``, its normal form: nulls and ``drop`` left out,
    containers copied without nulls (``plan.late`` ones only copied), set-like lists sorted, secrets
    redacted. Returns the fields left empty: they are dropped at the end (until then a default must not
    fill them)."""
    empty: list[str] | None = None
    sets, late, exact, plain = plan.sets, plan.late, _EXACT_LEAVES, _PLAIN_KEYS
    for k, v in src.items():
        if v is None or k in drop:
            continue
        t = type(v)
        if t in exact:               # most fields
            body[k] = v if k in plain or not _is_secret_key(str(k)) else _redact_secret(v)
            continue
        if k in late:
            body[k] = _drop_nulls(v)
            continue
        if t is list:
            leaves = True
            n = len(v)
            if n == 1 and type(v[0]) is str:       # the usual lists: one string, or two
                c = [v[0]]
            elif n == 2 and type(v[0]) is str and type(v[1]) is str:
                a, b = v
                c = [b, a] if k in sets and b < a else [a, b]
            elif not n:
                body[k] = []
                empty = [k] if empty is None else [*empty, k]
                continue
            else:
                all_str = True
                for i in v:
                    if type(i) is not str:
                        all_str = False
                        if type(i) not in exact:
                            leaves = False
                            break
                if all_str and k in sets:
                    c = sorted(v)        # strings sort as themselves (_sort_key's result for a string)
                else:
                    c = v[:] if leaves else _drop_nulls(v)
                    if k in sets and len(c) > 1:
                        c.sort(key=_sort_key)
            if k not in plain and _is_secret_key(str(k)):
                c = _redact_secret(c)
            elif not leaves:
                _redact_owned(c)
            body[k] = c
        else:                        # a mapping (or something else: as in general)
            body[k] = _drop_nulls(v)
            if k in sets:
                _sort_set(body, k, sets)
            if _finish_field(body, k, drop=False):
                empty = [k] if empty is None else [*empty, k]
    return empty or ()


def _sort_set(body: dict[str, Any], k: str, sets: frozenset[str]) -> None:
    """Sort field ``k`` in place when it is a set-like list (strings need no key function)."""
    value = body[k]
    if k in sets and isinstance(value, list) and len(value) > 1:
        for i in value:
            if type(i) is not str:
                value.sort(key=_sort_key)
                break
        else:
            value.sort()


def _finish_field(body: dict[str, Any], k: str, *, drop: bool = True) -> bool:
    """The last step for one field: an empty list or mapping is dropped (or, with ``drop=False``, reported),
    a secret-bearing one redacted, anything inside a container redacted as :func:`_redact_owned` does."""
    v = body[k]
    t = type(v)
    if (t is list or t is dict) and not v:
        if drop:
            del body[k]
        return True
    if k not in _PLAIN_KEYS and _is_secret_key(str(k)):
        body[k] = _redact_secret(v)
    elif t is list:
        for item in v:               # a list of leaves (tags, paths, ...) has nothing to redact: no call
            if type(item) not in _EXACT_LEAVES:
                _redact_owned(v)
                break
    elif t is dict:
        _redact_owned(v)
    elif t not in _EXACT_LEAVES:
        body[k] = redact(v)
    return False


#: kinds whose natural key is a credential's secret, or its username or client id
_CREDENTIAL_KINDS: frozenset[str] = frozenset({
    "keyauth_credentials", "basicauth_credentials", "hmacauth_credentials", "jwt_secrets", "oauth2_credentials",
})
#: kinds whose natural key is not their name
_KEYED_OTHERWISE: frozenset[str] = _CREDENTIAL_KINDS | {
    "plugins", "consumers", "targets", "acls", "certificates", "ca_certificates"}
#: the fields a natural key is made of, by kind (others: name)
_KEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "consumers": ("username", "custom_id"), "targets": ("target",), "acls": ("group",),
    "certificates": ("cert",), "ca_certificates": ("cert",),
}


def _own_key(kind: str, body: Mapping[str, Any]) -> str | None:
    """The natural key of an entity that refers to nothing, when its name (a consumer's username or
    custom_id) gives it: known while collecting. Else None (:meth:`_Normaliser.natural_key` works it out)."""
    if kind == "consumers":
        username, custom_id = body.get("username"), body.get("custom_id")
        if type(username) in _EXACT_LEAVES and type(custom_id) in _EXACT_LEAVES:
            return str(username) if username else f"custom_id={custom_id}" if custom_id else None
    elif kind not in _KEYED_OTHERWISE:
        name = body.get("name")
        if name and type(name) in _EXACT_LEAVES:
            return str(name)
    return None


#: the references that scope a plugin, in the order its key names them
_PLUGIN_SCOPES: tuple[str, ...] = ("service", "route", "consumer")


def _other_key(raw: _Raw, refs: Mapping[str, str]) -> str:
    """The natural key of an entity of a kind not keyed by its name (:data:`_KEYED_OTHERWISE`)."""
    b: Mapping[str, Any] = raw.body
    if raw.kind == "plugins":
        name = b.get("name")
        if raw.failed is not None or type(name) not in _EXACT_LEAVES:
            name = _written_body(raw).get("name")
        if len(refs) == 1 and next(iter(refs)) in _PLUGIN_SCOPES:     # the usual: one scope
            (f, key), = refs.items()
            return f"{name}@{f}:{key}"
        scope = "+".join(f"{f}:{refs[f]}" for f in _PLUGIN_SCOPES if f in refs)
        return f"{name}@{scope or 'global'}"
    if raw.failed is not None or raw.kind in _CREDENTIAL_KINDS or not all(
            type(b.get(f)) in _EXACT_LEAVES for f in _KEY_FIELDS.get(raw.kind, ("name",))):
        b = _written_body(raw)
    if raw.kind in _CREDENTIAL_KINDS:
        secret = b.get("key") or b.get("username") or b.get("client_id")
        key = (f"sha256:{fingerprint(str(secret))}" if raw.kind == "keyauth_credentials" and secret
               else str(secret) if secret else _fingerprint_of(_written_body(raw), refs))
        return f"{refs['consumer']}/{key}" if raw.kind != "keyauth_credentials" and "consumer" in refs else key
    if raw.kind == "consumers":
        return str(b["username"]) if b.get("username") else (
            f"custom_id={b['custom_id']}" if b.get("custom_id") else _fingerprint_of(_written_body(raw), refs))
    if raw.kind == "targets":
        return f"{refs.get('upstream', '?')}/{b.get('target')}"
    if raw.kind == "acls":
        return f"{refs.get('consumer', '?')}/{b.get('group')}"
    cert = b.get("cert")             # certificates, ca_certificates
    return f"sha256:{fingerprint(str(cert))}" if cert else _fingerprint_of(_written_body(raw), refs)


def _written_body(raw: _Raw) -> dict[str, Any]:
    """The entry's fields as written, less its child lists and foreign keys (for fingerprints and messages)."""
    item = raw.item
    body = {k: v for k, v in item.items() if _taken(raw.kind, k, v) is None}
    if raw.kind == "certificates" and isinstance(body.get("snis"), list):
        names = [s for s in body["snis"] if isinstance(s, str)]
        body["snis"] = names or body["snis"]
    return body


def _describe(raw: _Raw) -> str:
    body = _written_body(raw)
    for f in ("name", "username", "id"):
        if body.get(f):
            return f"{body[f]!r}"
    return "(unnamed)"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _fingerprint_of(body: Mapping[str, Any], refs: Mapping[str, str]) -> str:
    stable = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    return "~" + hashlib.sha256(_canonical({**stable, **refs}).encode()).hexdigest()[:12]


def _sort_key(value: Any) -> str:
    return value if isinstance(value, str) else _canonical(value)


def _expand_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise ConfigError(f"service url {url!r} is not a URL; expected scheme://host[:port][/path]")
    port = parts.port or (443 if parts.scheme in ("https", "grpcs", "tls") else 80)
    out: dict[str, Any] = {"protocol": parts.scheme, "host": parts.hostname, "port": port}
    if parts.path:
        out["path"] = parts.path
    return out


def _drop_nulls(obj: Any) -> Any:
    if isinstance(obj, _LEAVES):
        return obj
    if isinstance(obj, list):        # leaves tested inline: cheaper than a call per item
        return [i if type(i) in _EXACT_LEAVES else _drop_nulls(i) for i in obj]
    if isinstance(obj, Mapping):
        return {k: v if type(v) in _EXACT_LEAVES else _drop_nulls(v) for k, v in obj.items() if v is not None}
    return obj


def _fill_default(body: dict[str, Any], path: list[str], default: Any) -> None:
    if default is None:          # nulls are dropped anyway; the rule documents a version-added field
        return
    node: Any = body
    for part in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(part, {})
    if isinstance(node, dict) and path[-1] not in node:
        node[path[-1]] = copy.deepcopy(default)


def normalise(declarative: Mapping[str, Any], *, source: str = "declarative") -> NormalConfig:
    """Normalise a declarative config: nested (a decK-style file) or flat (``GET /config``, entity lists).

    Accepts YAML/JSON text already parsed into a dict. ``GET /config``'s wrapper ``{"config": "<yaml>"}``
    is unwrapped.
    """
    if not isinstance(declarative, Mapping):
        raise ConfigError(f"a declarative config must be a mapping, got {type(declarative).__name__}")
    if set(declarative) == {"config"} and isinstance(declarative["config"], str):
        declarative = parse_declarative(declarative["config"])
    fmt = declarative.get("_format_version")
    with _gc_paused():
        normaliser = _Normaliser(declarative)
        entities = normaliser.normal()
        # free the intermediate entities while the collector is still paused (they hold no cycles, so
        # reference counting frees them): else its first pass after the pause walks them all
        del normaliser
    return NormalConfig(entities, None if fmt is None else str(fmt), source)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: normalising builds no cycles, but many containers, and with a
    large config (50,000 entities) the collector's passes over them took a third of the time.

    On the way out, what was built (a normal form: long-lived, acyclic) is moved to the oldest generation
    with everything else young (``gc.freeze`` then ``gc.unfreeze``: a move, no pass), so the next young
    collections do not walk it (they took 40-50 ms for the two normal forms of a 55,000-entity parity
    check). Skipped when the process keeps frozen objects of its own (``unfreeze`` would release them)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def parse_declarative(text: str) -> dict[str, Any]:
    """Parse YAML or JSON text of a declarative config into a dict, with a clear error."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"declarative config is not valid YAML/JSON: {exc}",
                          hint="check the file with `kong config parse` or a YAML linter") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"declarative config must be a mapping with _format_version, got {type(data).__name__}: "
            f"{str(data)[:200]!r}")
    return data


# ---------------------------------------------------------------------------------------------------
# Capture


class _Reader(Protocol):
    def root(self) -> Any: ...
    def config(self, *, deadline: Deadline | None = None) -> dict[str, Any]: ...
    def list(self, entity: str, *, deadline: Deadline | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]: ...


#: declarative kind -> Admin API entity name for listing
CAPTURE_KINDS: Mapping[str, str] = {
    "services": "services", "routes": "routes", "consumers": "consumers", "plugins": "plugins",
    "keyauth_credentials": "key-auths", "upstreams": "upstreams", "targets": "targets",
    "certificates": "certificates", "snis": "snis", "ca_certificates": "ca_certificates",
}

#: ``on_progress(kind, pages, entities)`` while a capture lists entities (totals for that kind so far)
CaptureProgress = Callable[[str, int, int], None]


def capture_declarative(client: _Reader, *, deadline: Deadline | None = None,
                        on_progress: CaptureProgress | None = None, info: Any = None) -> dict[str, Any]:
    """The node's whole config as a flat declarative dict (with ids, so it can be loaded elsewhere).

    DB-less nodes: ``GET /config`` (its YAML read with aliases and size limited). CP / database mode:
    every entity kind listed page by page, foreign keys written as id strings, ``_format_version`` "3.0"
    (2.x: "2.1"). ``deadline`` bounds the whole capture (each call also has its own size-scaled one);
    ``on_progress(kind, pages, entities)`` reports each page of a listing; ``info`` is the node's
    ``root()`` when the caller has it already.
    """
    info = client.root() if info is None else info
    if getattr(info, "database", None) == "off":
        return client.config(deadline=deadline)
    major = int(str(getattr(info, "version", "3")).split(".")[0] or 3)
    out: dict[str, Any] = {"_format_version": "3.0" if major >= 3 else "2.1", "_transform": False}
    for kind, entity in CAPTURE_KINDS.items():
        report = None if on_progress is None else functools.partial(on_progress, kind)
        items = []
        for item in client.list(entity, deadline=deadline, on_progress=report):
            item = dict(item)
            for f in FOREIGN_KEYS:
                if isinstance(item.get(f), Mapping) and "id" in item[f]:
                    item[f] = item[f]["id"]
            items.append(item)
        if items:
            out[kind] = items
    return out


def capture(client: _Reader, *, deadline: Deadline | None = None,
            on_progress: CaptureProgress | None = None) -> NormalConfig:
    """Capture a node's config in normal form (DB-less: ``GET /config``; otherwise entity listing)."""
    info = client.root()
    raw = capture_declarative(client, deadline=deadline, on_progress=on_progress, info=info)
    source = "GET /config" if getattr(info, "database", None) == "off" else "entity listing"
    return normalise(raw, source=source)


# ---------------------------------------------------------------------------------------------------
# Diff


@dataclass(frozen=True)
class AllowRule:
    """An expected X -> Y difference: a path glob (``*`` and ``?`` wildcards) and why it is expected.

    A rule also covers everything below its path: ``plugins['key-auth@global']`` allows changes to
    ``plugins['key-auth@global'].config.realm``.
    """

    path: str
    reason: str

    def matches(self, path: str) -> bool:
        return _glob_regex(self.path).fullmatch(path) is not None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body + r"(?:[.\[].*)?")


@dataclass(frozen=True)
class Change:
    """One difference between X and Y."""

    group: str                 # "added" | "removed" | "changed"
    path: str                  # services['orders'].retries
    before: Any = None
    after: Any = None
    reason: str | None = None  # set when an allow-list rule matched

    def line(self) -> str:
        if self.group == "added":
            return f"+ {self.path}: {_show(self.after)}"
        if self.group == "removed":
            return f"- {self.path}: {_show(self.before)}"
        return f"~ {self.path}: {_show(self.before)} → {_show(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        out = {"group": self.group, "path": self.path, "before": self.before, "after": self.after}
        if self.reason:
            out["reason"] = self.reason
        return out


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ConfigDiff:
    """Parity result X vs Y, grouped; ``allowed`` holds differences an allow-list rule explained."""

    added: tuple[Change, ...] = ()
    removed: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    allowed: tuple[Change, ...] = ()
    compared: int = 0                     # entities compared

    @property
    def clean(self) -> bool:
        """True when every difference is allowed."""
        return not (self.added or self.removed or self.changed)

    def __bool__(self) -> bool:
        return not self.clean

    def summary(self) -> str:
        return (f"{self.compared} entities compared: {len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.changed)} changed, {len(self.allowed)} allowed")

    def to_dict(self) -> dict[str, Any]:
        def conv(changes: tuple[Change, ...]) -> list[dict[str, Any]]:
            return [json.loads(json.dumps(redact(c.to_dict()), default=_json_default)) for c in changes]
        return {"summary": self.summary(), "clean": self.clean, "compared": self.compared,
                "added": conv(self.added), "removed": conv(self.removed),
                "changed": conv(self.changed), "allowed": conv(self.allowed)}

    def render_text(self, *, limit: int = 200) -> str:
        lines = [self.summary()]
        for title, changes in (("added on Y", self.added), ("removed on Y", self.removed),
                               ("changed", self.changed), ("allowed (expected)", self.allowed)):
            if not changes:
                continue
            lines.append(f"{title}:")
            for change in changes[:limit]:
                shown = redact(change.to_dict())
                line = Change(change.group, change.path, shown.get("before"), shown.get("after")).line()
                if change.reason:
                    line += f"   [{change.reason}]"
                lines.append("  " + line)
            if len(changes) > limit:
                lines.append(f"  ... and {len(changes) - limit} more")
        return "\n".join(lines)

    def render_html(self) -> str:
        rows = []
        for title, changes in (("added", self.added), ("removed", self.removed),
                               ("changed", self.changed), ("allowed", self.allowed)):
            for change in changes:
                shown = redact(change.to_dict())
                rows.append(
                    f"<tr class='{title}'><td>{title}</td><td><code>{html.escape(change.path)}</code></td>"
                    f"<td>{html.escape(_show(shown.get('before')))}</td>"
                    f"<td>{html.escape(_show(shown.get('after')))}</td>"
                    f"<td>{html.escape(change.reason or '')}</td></tr>"
                )
        body = "\n".join(rows) or "<tr><td colspan='5'>no differences</td></tr>"
        return (
            "<div class='config-diff'>"
            f"<p>{html.escape(self.summary())}</p>"
            "<table><thead><tr><th>group</th><th>path</th><th>X</th><th>Y</th><th>reason</th></tr></thead>"
            f"<tbody>\n{body}\n</tbody></table></div>"
        )


def _json_default(value: Any) -> Any:
    return None if value is _ABSENT else str(value)


def _entity_path(kind: str, key: str) -> str:
    return f"{kind}[{key!r}]"


def _readable(base: str, parts: Iterable[Any]) -> str:
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


#: DeepDiff's own default, passed explicitly: below this share of common keys it reports a mapping as
#: changed as a whole, and :func:`_entity_changes` leaves such an entity to it
_DEEPER = 0.33
#: leaf types whose difference :func:`_entity_changes` reports itself, as DeepDiff would (a value of
#: another type, or an unequal one of the same type, is a change: ``1`` and ``True`` differ)
_DIFF_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _entity_changes(base: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The changes inside one entity, sorted by path, exactly as DeepDiff reports them: added and removed
    fields and changed leaf fields are read off directly; DeepDiff runs only on the container fields that
    are not identical (on those alone: it reports each key of a mapping on its own)."""
    if not all(type(k) is str and not k.startswith("__") for k in (*before, *after)):
        return _deepdiff_changes(base, before, after)      # (DeepDiff skips "__" keys)
    shared = [k for k in before if k in after]
    union = len(before) + len(after) - len(shared)
    if union > 1 and len(shared) / union < _DEEPER:
        return _deepdiff_changes(base, before, after)
    changes = [Change("changed", _readable(base, (k,)), _ABSENT, v) for k, v in after.items() if k not in before]
    changes += [Change("changed", _readable(base, (k,)), v, _ABSENT) for k, v in before.items() if k not in after]
    deeper = []
    for k in shared:
        a, b = before[k], after[k]
        if a is b:
            continue
        if type(a) in _DIFF_LEAVES and type(b) in _DIFF_LEAVES:
            if type(a) is not type(b) or a != b:
                changes.append(Change("changed", _readable(base, (k,)), a, b))
        elif not _identical(a, b):
            deeper.append(k)
    if deeper:
        changes += _deepdiff_changes(base, {k: before[k] for k in deeper}, {k: after[k] for k in deeper})
    return sorted(changes, key=lambda c: c.path)


def _identical(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down: DeepDiff would report nothing. False when unsure."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is str or t is int or t is bool or t is float:
        return bool(a == b)
    if t is list:
        return len(a) == len(b) and all(_identical(i, j) for i, j in zip(a, b, strict=True))
    if t is dict:
        return a.keys() == b.keys() and all(type(k) is str and not k.startswith("__") and _identical(v, b[k])
                                            for k, v in a.items())
    return False


def _deepdiff_changes(base: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    changes: list[Change] = []
    tree = DeepDiff(before, after, view="tree", verbose_level=2, threshold_to_diff_deeper=_DEEPER)
    for report, levels in tree.items():
        for level in levels:
            path = _readable(base, level.path(output_format="list"))
            if report in ("dictionary_item_added", "iterable_item_added", "attribute_added"):
                changes.append(Change("changed", path, _ABSENT, level.t2))
            elif report in ("dictionary_item_removed", "iterable_item_removed", "attribute_removed"):
                changes.append(Change("changed", path, level.t1, _ABSENT))
            else:
                changes.append(Change("changed", path, level.t1, level.t2))
    return sorted(changes, key=lambda c: c.path)


def diff(
    x: NormalConfig,
    y: NormalConfig,
    allow: Iterable[AllowRule | Mapping[str, str] | tuple[str, str]] = (),
) -> ConfigDiff:
    """Compare X with Y entity by entity (``==`` first, deepdiff only on entities that differ)."""
    rules = [_as_rule(a) for a in allow]
    added: list[Change] = []
    removed: list[Change] = []
    changed: list[Change] = []
    compared = 0
    for kind in sorted(set(x.entities) | set(y.entities)):
        xs, ys = x.entities.get(kind, {}), y.entities.get(kind, {})
        # one look at each entity; only the few that differ are sorted and get a path
        gone, differ = [], []
        for key, entity in xs.items():
            other = ys.get(key, _ABSENT)
            if other is _ABSENT:
                gone.append(key)
            elif entity != other:
                differ.append(key)
        new = ys.keys() - xs.keys()
        compared += len(xs) + len(new)
        removed += [Change("removed", _entity_path(kind, key), xs[key], _ABSENT) for key in sorted(gone)]
        added += [Change("added", _entity_path(kind, key), _ABSENT, ys[key]) for key in sorted(new)]
        for key in sorted(differ):
            changed.extend(_entity_changes(_entity_path(kind, key), xs[key], ys[key]))
    allowed: list[Change] = []

    def keep(changes: list[Change]) -> tuple[Change, ...]:
        kept = []
        for change in changes:
            rule = next((r for r in rules if r.matches(change.path)), None)
            if rule is None:
                kept.append(change)
            else:
                allowed.append(Change(change.group, change.path, change.before, change.after, rule.reason))
        return tuple(kept)

    kept_added, kept_removed, kept_changed = keep(added), keep(removed), keep(changed)
    return ConfigDiff(kept_added, kept_removed, kept_changed, tuple(allowed), compared)


def _as_rule(item: AllowRule | Mapping[str, str] | tuple[str, str]) -> AllowRule:
    if isinstance(item, AllowRule):
        return item
    if isinstance(item, Mapping):
        path, reason = item.get("path"), item.get("reason")
    elif isinstance(item, tuple):
        path, reason = item
    else:  # any object with .path and .reason (e.g. the plan's parity entries)
        path, reason = getattr(item, "path", None), getattr(item, "reason", None)
    if not path or not reason:
        raise ConfigError(f"allow-list entry {item!r} needs a path and a reason",
                          hint="write {path: \"plugins['key-auth@global'].config.realm\", reason: \"...\"}")
    return AllowRule(str(path), str(reason))
