"""One entry of a declarative config on its way into the normal form (:mod:`harness.config`).

What is done to an entry without looking at the other entries: the per-kind plan worked out once from
the declared rules of :mod:`harness.config_rules` (:func:`kind_plan`); the record of a collected entry
(:class:`Entry`); its own fields in normal form (:func:`own_fields`, :func:`normal_fields`: volatile
fields and nulls dropped, containers copied, set-like lists sorted, secrets redacted; :func:`fill_default`
and :func:`finish_field` for what the defaults fill); and its natural key from its own fields and the
keys of what it refers to (:func:`own_key`, :func:`other_key`). Collecting the entries, resolving their
references and placing each entity under its key is :mod:`harness.config`'s.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from harness.config_redact import (
    EXACT_LEAVES,
    LEAVES,
    PLAIN_KEYS,
    fingerprint,
    is_secret_key,
    redact,
    redact_owned,
    redact_secret,
    redacted,
)
from harness.config_rules import (
    CREDENTIAL_KINDS,
    DEFAULT_RULES,
    FOREIGN_KEYS,
    KEY_FIELDS,
    KEYED_OTHERWISE,
    NESTED_CHILDREN,
    PLAIN_PATH_2X,
    PLUGIN_SCOPES,
    SET_FIELDS,
    VOLATILE_FIELDS,
)
from harness.errors import ConfigError

_Fill = tuple[str | None, list[str], Any]     # (plugin it applies to or None, path parts, default)


@dataclass(frozen=True)
class KindPlan:
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
def kind_plan(kind: str) -> KindPlan:
    # the rules that fill something (null defaults do not)
    fills = [(r.plugin, r.path.split("."), r.default) for r in DEFAULT_RULES
             if r.kind == kind and r.default is not None]
    top = [(plugin, path, d) for plugin, path, d in fills if plugin is None and len(path) == 1]
    late = {path[0] for _, path, _ in fills if len(path) > 1} | ({"headers"} if kind == "routes" else set())
    return KindPlan(SET_FIELDS.get(kind, frozenset()), frozenset(path[0] for _, path, _ in top), tuple(fills),
                    tuple(rule for rule in fills if rule not in top), frozenset(late),
                    all(path[0] != "name" for _, path, _ in fills), any(p is not None for p, _, _ in fills))


def taken_as(kind: str, k: str, v: Any) -> str | None:
    """Whether field ``k`` of a ``kind`` entry is a nested child list ("child"), a foreign key ("ref") or
    neither (None). Under a consumer any list of mappings is a child list (acls, basicauth_credentials, ...)."""
    if (((k in NESTED_CHILDREN and kind != k) or (kind == "consumers" and v))
            and isinstance(v, list) and all(isinstance(i, Mapping) for i in v)):
        return "child"
    if k in FOREIGN_KEYS and kind != FOREIGN_KEYS[k]:
        return "ref"
    return None


#: the references of an entity that has none, and their keys (shared: never written to)
NO_REFS: Mapping[str, Any] = MappingProxyType({})
NO_REF_KEYS: dict[str, str] = {}
#: :func:`dropped` by what was taken out (bounded like :data:`harness.config_redact.PLAIN_KEYS`)
DROPPED: dict[tuple[str, ...], frozenset[str]] = {}


def dropped(taken: tuple[str, ...]) -> frozenset[str]:
    """The fields an entity's normal form leaves out: volatile ones and those taken out while collecting."""
    drop = VOLATILE_FIELDS.union(taken)
    if len(DROPPED) < 1024:
        DROPPED[taken] = drop
    return drop


#: kinds whose entries :func:`own_fields` rewrites before their fields are normalised
REWRITTEN: frozenset[str] = frozenset({"services", "certificates", "keyauth_credentials"})   # (routes: 2.x)


def own_fields(kind: str, src: Mapping[str, Any], drop: frozenset[str], plan: KindPlan,
               old_format: bool) -> tuple[dict[str, Any], Sequence[str], str | None]:
    """An entry's own fields in normal form (all but references and defaults), the fields left empty
    (:func:`normal_fields`) and, for a key-auth credential, its key's fingerprint."""
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
        if type(secret) not in EXACT_LEAVES:
            secret = redacted(str(drop_nulls(secret)))
        elif secret:                 # what the natural key fingerprints too: once
            fp = fingerprint(str(secret))
            secret = f"<redacted:{fp}>"
        else:
            secret = redacted(str(secret))
        src = {**src, "key": secret}
    return body, normal_fields(src, drop, plan, body), fp


@dataclass(slots=True)
class Entry:
    """One entry of a declarative config as the normaliser collected it (nested ones with their parent)."""

    kind: str
    item: Mapping[str, Any]       # the entry as written
    drop: frozenset[str]          # its fields that are not the entity's own: volatile, child lists, foreign keys
    refs: Mapping[str, Any]       # foreign field -> Entry (nested parent) | str | {"id"/"name": ...}
    ident: Any                    # its "id" (kept for the kinds a foreign key can name: :data:`REFERRED`)
    # its own fields in normal form (:func:`own_fields`), built while collecting, when the entry was
    # last read (a large config's entries are far apart in memory: each is read once), and the empty ones
    body: dict[str, Any]
    empty: Sequence[str]
    fp: str | None                # key-auth: the fingerprint of its key
    failed: Exception | None      # what building the body raised: raised when the entity is built
    plan: KindPlan
    key: str | None = None        # natural key, filled in by the normaliser
    ref_keys: dict[str, str] | None = None   # foreign field -> natural key, filled in with key
    normal: dict[str, Any] | None = None     # the normalised entity, once built


def normal_fields(src: Mapping[str, Any], drop: frozenset[str], plan: KindPlan,
                  body: dict[str, Any]) -> Sequence[str]:
    """One pass over an entry's fields into ``body``, its normal form: nulls and ``drop`` left out,
    containers copied without nulls (``plan.late`` ones only copied), set-like lists sorted, secrets
    redacted. Returns the fields left empty: they are dropped at the end (until then a default must not
    fill them)."""
    empty: list[str] | None = None
    sets, late, exact, plain = plan.sets, plan.late, EXACT_LEAVES, PLAIN_KEYS
    for k, v in src.items():
        if v is None or k in drop:
            continue
        t = type(v)
        if t in exact:               # most fields
            body[k] = v if k in plain or not is_secret_key(str(k)) else redact_secret(v)
            continue
        if k in late:
            body[k] = drop_nulls(v)
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
                    c = sorted(v)        # strings sort as themselves (sort_key's result for a string)
                else:
                    c = v[:] if leaves else drop_nulls(v)
                    if k in sets and len(c) > 1:
                        c.sort(key=sort_key)
            if k not in plain and is_secret_key(str(k)):
                c = redact_secret(c)
            elif not leaves:
                redact_owned(c)
            body[k] = c
        else:                        # a mapping (or something else: as in general)
            body[k] = drop_nulls(v)
            if k in sets:
                sort_set(body, k, sets)
            if finish_field(body, k, drop=False):
                empty = [k] if empty is None else [*empty, k]
    return empty or ()


def sort_set(body: dict[str, Any], k: str, sets: frozenset[str]) -> None:
    """Sort field ``k`` in place when it is a set-like list (strings need no key function)."""
    value = body[k]
    if k in sets and isinstance(value, list) and len(value) > 1:
        for i in value:
            if type(i) is not str:
                value.sort(key=sort_key)
                break
        else:
            value.sort()


def finish_field(body: dict[str, Any], k: str, *, drop: bool = True) -> bool:
    """The last step for one field: an empty list or mapping is dropped (or, with ``drop=False``, reported),
    a secret-bearing one redacted, anything inside a container redacted as :func:`redact_owned` does."""
    v = body[k]
    t = type(v)
    if (t is list or t is dict) and not v:
        if drop:
            del body[k]
        return True
    if k not in PLAIN_KEYS and is_secret_key(str(k)):
        body[k] = redact_secret(v)
    elif t is list:
        for item in v:               # a list of leaves (tags, paths, ...) has nothing to redact: no call
            if type(item) not in EXACT_LEAVES:
                redact_owned(v)
                break
    elif t is dict:
        redact_owned(v)
    elif t not in EXACT_LEAVES:
        body[k] = redact(v)
    return False


def own_key(kind: str, body: Mapping[str, Any]) -> str | None:
    """The natural key of an entity that refers to nothing, when its name (a consumer's username or
    custom_id) gives it: known while collecting. Else None (the normaliser's ``natural_key`` works it out)."""
    if kind == "consumers":
        username, custom_id = body.get("username"), body.get("custom_id")
        if type(username) in EXACT_LEAVES and type(custom_id) in EXACT_LEAVES:
            return str(username) if username else f"custom_id={custom_id}" if custom_id else None
    elif kind not in KEYED_OTHERWISE:
        name = body.get("name")
        if name and type(name) in EXACT_LEAVES:
            return str(name)
    return None


def other_key(raw: Entry, refs: Mapping[str, str]) -> str:
    """The natural key of an entity of a kind not keyed by its name (:data:`KEYED_OTHERWISE`)."""
    b: Mapping[str, Any] = raw.body
    if raw.kind == "plugins":
        name = b.get("name")
        if raw.failed is not None or type(name) not in EXACT_LEAVES:
            name = written_body(raw).get("name")
        if len(refs) == 1 and next(iter(refs)) in PLUGIN_SCOPES:     # the usual: one scope
            (f, key), = refs.items()
            return f"{name}@{f}:{key}"
        scope = "+".join(f"{f}:{refs[f]}" for f in PLUGIN_SCOPES if f in refs)
        return f"{name}@{scope or 'global'}"
    if raw.failed is not None or raw.kind in CREDENTIAL_KINDS or not all(
            type(b.get(f)) in EXACT_LEAVES for f in KEY_FIELDS.get(raw.kind, ("name",))):
        b = written_body(raw)
    if raw.kind in CREDENTIAL_KINDS:
        secret = b.get("key") or b.get("username") or b.get("client_id")
        key = (f"sha256:{fingerprint(str(secret))}" if raw.kind == "keyauth_credentials" and secret
               else str(secret) if secret else fingerprint_of(written_body(raw), refs))
        return f"{refs['consumer']}/{key}" if raw.kind != "keyauth_credentials" and "consumer" in refs else key
    if raw.kind == "consumers":
        return str(b["username"]) if b.get("username") else (
            f"custom_id={b['custom_id']}" if b.get("custom_id") else fingerprint_of(written_body(raw), refs))
    if raw.kind == "targets":
        return f"{refs.get('upstream', '?')}/{b.get('target')}"
    if raw.kind == "acls":
        return f"{refs.get('consumer', '?')}/{b.get('group')}"
    cert = b.get("cert")             # certificates, ca_certificates
    return f"sha256:{fingerprint(str(cert))}" if cert else fingerprint_of(written_body(raw), refs)


def written_body(raw: Entry) -> dict[str, Any]:
    """The entry's fields as written, less its child lists and foreign keys (for fingerprints and messages)."""
    item = raw.item
    body = {k: v for k, v in item.items() if taken_as(raw.kind, k, v) is None}
    if raw.kind == "certificates" and isinstance(body.get("snis"), list):
        names = [s for s in body["snis"] if isinstance(s, str)]
        body["snis"] = names or body["snis"]
    return body


def describe(raw: Entry) -> str:
    body = written_body(raw)
    for f in ("name", "username", "id"):
        if body.get(f):
            return f"{body[f]!r}"
    return "(unnamed)"


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_of(body: Mapping[str, Any], refs: Mapping[str, str]) -> str:
    stable = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    return "~" + hashlib.sha256(canonical({**stable, **refs}).encode()).hexdigest()[:12]


def sort_key(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)


def _expand_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise ConfigError(f"service url {url!r} is not a URL; expected scheme://host[:port][/path]")
    port = parts.port or (443 if parts.scheme in ("https", "grpcs", "tls") else 80)
    out: dict[str, Any] = {"protocol": parts.scheme, "host": parts.hostname, "port": port}
    if parts.path:
        out["path"] = parts.path
    return out


def drop_nulls(obj: Any) -> Any:
    if isinstance(obj, LEAVES):
        return obj
    if isinstance(obj, list):        # leaves tested inline: cheaper than a call per item
        return [i if type(i) in EXACT_LEAVES else drop_nulls(i) for i in obj]
    if isinstance(obj, Mapping):
        return {k: v if type(v) in EXACT_LEAVES else drop_nulls(v) for k, v in obj.items() if v is not None}
    return obj


def fill_default(body: dict[str, Any], path: list[str], default: Any) -> None:
    if default is None:          # nulls are dropped anyway; the rule documents a version-added field
        return
    node: Any = body
    for part in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(part, {})
    if isinstance(node, dict) and path[-1] not in node:
        node[path[-1]] = copy.deepcopy(default)
