"""decK's rules as data, the merged state value, and the identity check (see :mod:`harness.deck`).

``GDR`` is ``Kong/go-database-reconciler @ v1.40.3``, where decK's file code lives; ``DECK`` is
``Kong/deck @ v1.65.1``; ``docs`` is ``Kong/docs.konghq.com app/_src/deck/guides``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config_redact import fingerprint
from harness.config_rules import SECRET_KEY_PARTS, SECRET_KEYS
from harness.errors import ConfigError

# ---------------------------------------------------------------------------------------------------
# decK's rules, as data

#: file name endings read from a folder (GDR pkg/utils/utils.go ConfigFilesInDir; compared lower-case)
STATE_FILE_SUFFIXES: frozenset[str] = frozenset({".yaml", ".yml", ".json"})

#: _format_version values Kong understands (KONG-FACTS §5: 2.8 takes 1.1/2.1, 3.x also 3.0)
FORMAT_VERSIONS: frozenset[str] = frozenset({"1.1", "2.1", "3.0"})
#: what decK assumes when no file sets _format_version (DECK cmd/common.go, utils.DefaultFormatVersion)
DEFAULT_FORMAT_VERSION = "1.1"

#: decK-only top-level keys: read here, never sent to Kong
META_KEYS: frozenset[str] = frozenset({
    "_format_version", "_transform", "_info", "_workspace", "_konnect", "_plugin_configs",
})

#: top-level entity kinds that are kept (in this order, parents first) and sent to Kong
ENTITY_KINDS: tuple[str, ...] = (
    "certificates", "ca_certificates", "vaults", "key_sets", "keys", "services", "routes", "upstreams",
    "consumers", "plugins", "filter_chains",
)

#: top-level kinds of decK's file schema that the harness refuses, and why
UNSUPPORTED_KINDS: Mapping[str, str] = {
    "consumer_groups": "consumer groups are a Kong Enterprise entity, and decK writes their memberships "
                       "differently from the DB-less format (`deck file format`, Kong/deck cmd/file_format.go)",
    "partials": "plugin partials are a Kong Enterprise entity (DB-less calls them plugins_partials)",
    "rbac_roles": "RBAC roles are a Kong Enterprise entity",
    "licenses": "licenses are a Kong Enterprise entity",
    "custom_entities": "custom entities (degraphql routes) are a Kong Enterprise entity",
    "service_packages": "service packages belong to Konnect's service catalog",
    "cloned_plugins": "cloned plugin definitions exist only in Konnect",
    "custom_plugins": "custom plugin definitions exist only in Konnect",
}

#: ``_info`` keys the harness reads
INFO_KEYS: frozenset[str] = frozenset({"select_tags", "defaults"})
#: ``_info`` keys of decK's schema the harness refuses when set (to a true or non-empty value), and why
UNSUPPORTED_INFO: Mapping[str, str] = {
    "default_lookup_tags": "it makes decK look entities up in a live Kong by tag; a file that seeds new "
                           "nodes must hold every entity it refers to",
    "consumer_group_policy_overrides": "consumer groups are a Kong Enterprise entity",
    "skip_hash_for_basic_auth": "it applies to Konnect only",
    "include_plugin_definitions": "it applies to Konnect only",
}

#: ``_info.defaults`` kind -> entity kind it fills (GDR pkg/file/types.go KongDefaults)
DEFAULT_KINDS: Mapping[str, str] = {
    "service": "services", "route": "routes", "upstream": "upstreams", "target": "targets",
}
#: fields a default may not set (GDR pkg/utils/constants.go defaultsRestrictedFields)
DEFAULT_RESTRICTED: Mapping[str, tuple[str, ...]] = {
    "service": ("id", "name"), "route": ("id", "name"), "upstream": ("id", "name"), "target": ("id", "target"),
}
#: service fields a ``url`` sets, so a default never fills them (GDR pkg/file/types.go unwrapURL)
URL_FIELDS: tuple[str, ...] = ("protocol", "host", "port", "path")

#: nested child lists decK writes: parent kind -> {field: child kind} (GDR pkg/file/types.go F* structs)
CHILDREN: Mapping[str, Mapping[str, str]] = {
    "services": {"routes": "routes", "plugins": "plugins", "filter_chains": "filter_chains"},
    "routes": {"plugins": "plugins", "filter_chains": "filter_chains"},
    "consumers": {
        "plugins": "plugins", "keyauth_credentials": "keyauth_credentials",
        "basicauth_credentials": "basicauth_credentials", "hmacauth_credentials": "hmacauth_credentials",
        "jwt_secrets": "jwt_secrets", "oauth2_credentials": "oauth2_credentials", "acls": "acls",
        "mtls_auth_credentials": "mtls_auth_credentials",
    },
    "upstreams": {"targets": "targets"},
    "certificates": {"snis": "snis"},
}
#: nested fields refused, and why
UNSUPPORTED_CHILDREN: Mapping[tuple[str, str], str] = {
    ("consumers", "groups"): UNSUPPORTED_KINDS["consumer_groups"],
}

#: what every entity of a kind must have: any one of the alternatives, each a set of fields that must all
#: be present (GDR pkg/file/kong_json_schema.json: ``required`` / ``anyOf``)
REQUIRED: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "services": (("name",), ("id",)),
    "routes": (("name",), ("id",)),
    "consumers": (("username",), ("custom_id",)),
    "plugins": (("name",),),
    "upstreams": (("name",),),
    "targets": (("target",),),
    "certificates": (("id", "cert", "key"),),
    "ca_certificates": (("cert",),),
    "keys": (("name",), ("id",)),
    "key_sets": (("name",), ("id",)),
    "filter_chains": (("filters",),),
    "keyauth_credentials": (("key",),),
    "basicauth_credentials": (("username", "password"),),
    "hmacauth_credentials": (("username", "secret"),),
    "jwt_secrets": (("algorithm", "key", "secret"),),
    "oauth2_credentials": (("name", "client_id", "client_secret"),),
    "acls": (("group",),),
    "mtls_auth_credentials": (("id", "subject_name"),),
}

#: what makes two entities of a kind the same one: each tuple of fields is unique on its own; "^" is the
#: parent entity (a target is unique within its upstream) and "@scope" a plugin's service/route/consumer
#: (GDR pkg/state/*.go, the look-ups each collection's ``Add`` makes before "entity already exists")
IDENTITY: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "services": (("id",), ("name",)),
    "routes": (("id",), ("name",)),
    "consumers": (("id",), ("username",), ("custom_id",)),
    "plugins": (("id",), ("name", "@scope")),
    "upstreams": (("id",), ("name",)),
    "targets": (("id",), ("^", "target")),
    "certificates": (("id",),),
    "ca_certificates": (("id",), ("cert",)),
    "snis": (("id",), ("name",)),
    "vaults": (("id",), ("prefix",)),
    "keys": (("id",), ("name",)),
    "key_sets": (("id",), ("name",)),
    "filter_chains": (("id",),),
    "keyauth_credentials": (("id",), ("key",)),
    "basicauth_credentials": (("id",), ("username",)),
    "hmacauth_credentials": (("id",), ("username",)),
    "jwt_secrets": (("id",), ("key",)),
    "oauth2_credentials": (("id",), ("client_id",)),
    "acls": (("id",), ("^", "group")),
    "mtls_auth_credentials": (("id",),),
}

#: foreign-key fields that must name an entity of the files: field -> kind (GDR builder.go looks each up)
REFERENCES: Mapping[str, str] = {"service": "services", "route": "routes", "consumer": "consumers"}

#: the fields a reference may name, per kind (the natural keys Kong and decK accept besides the id)
REF_FIELDS: Mapping[str, tuple[str, ...]] = {
    "services": ("id", "name"), "routes": ("id", "name"), "consumers": ("id", "username", "custom_id"),
}
#: the field that names an entity in messages, per kind (else its id, else its position)
NAME_FIELDS: tuple[str, ...] = ("name", "username", "custom_id", "target", "prefix", "group", "subject_name")


# ---------------------------------------------------------------------------------------------------
# The loaded state


@dataclass(frozen=True)
class DeckState:
    """decK state files merged as decK merges them, defaults and select_tags applied.

    ``config`` holds the entity lists only (no decK-only keys), nested as the files nest them; treat it
    as read only: :func:`to_declarative` returns a copy.
    """

    source: Path                                  # the file or folder given to load_deck
    files: tuple[Path, ...]                       # the state files read, in merge order
    format_version: str                           # the files' one _format_version ("1.1" if none set it)
    select_tags: tuple[str, ...] = ()             # _info.select_tags, the same in every file that sets them
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # _info.defaults by kind
    config: Mapping[str, list[Any]] = field(default_factory=dict)             # kind -> entities
    file_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)      # kind -> index in files, per entity

    def count(self) -> int:
        """Entities in the state, nested ones included."""
        return sum(1 for _ in walk_entities(self.config))

    def summary(self) -> str:
        names = ", ".join(p.name for p in self.files)
        tags = f", select_tags {list(self.select_tags)}" if self.select_tags else ""
        return (f"decK state {self.source} ({len(self.files)} file(s): {names}): {self.count()} entities, "
                f"_format_version {self.format_version}{tags}")


@dataclass(slots=True)
class LocatedEntity:
    """One entity of the merged state, with the file and place it came from (for messages)."""

    kind: str
    body: dict[str, Any]
    file: Path
    parent: LocatedEntity | None
    where: str                     # position for messages, e.g. services[2].routes[0]


# ---------------------------------------------------------------------------------------------------
# Identity: references resolve, no entity twice


def check_identity(flat: list[LocatedEntity], show: Callable[[Path], str]) -> None:
    """Check that references resolve and that no two entities share an identity."""
    index: dict[str, dict[str, LocatedEntity]] = {}      # kind -> any reference token -> entity
    for e in flat:
        for f in REF_FIELDS.get(e.kind, ()):
            token = e.body.get(f)
            if isinstance(token, str) and token:
                index.setdefault(e.kind, {}).setdefault(token, e)
    seen: dict[tuple[Any, ...], LocatedEntity] = {}
    for e in flat:
        for ref_field, ref_kind in REFERENCES.items():
            if ref_field in e.body and e.body[ref_field] is not None and e.kind != ref_kind:
                _resolve(e, ref_field, ref_kind, index, show)
        for spec in IDENTITY.get(e.kind, ()):
            values = tuple(_identity_part(e, f, index, show) for f in spec)
            if any(v is None for v in values):
                continue
            key = (e.kind, spec, values)
            first = seen.get(key)
            if first is None:
                seen[key] = e
                continue
            where = (f"twice in decK state file {show(e.file)} ({first.where} and {e.where})"
                     if first.file == e.file else
                     f"in decK state files {show(first.file)} ({first.where}) and {show(e.file)} ({e.where})")
            raise ConfigError(
                f"{label(e.kind, e.body)} is defined {where}: two {e.kind} with the same "
                f"{'+'.join(f.lstrip('@^') or 'parent' for f in spec)}; decK stops with 'entity already exists'",
                hint="keep one definition (a folder's files are merged into one state)")


def _resolve(e: LocatedEntity, ref_field: str, ref_kind: str, index: Mapping[str, Mapping[str, LocatedEntity]],
             show: Callable[[Path], str]) -> LocatedEntity:
    ref = e.body[ref_field]
    token = ref
    if isinstance(ref, Mapping):
        token = next((ref[f] for f in REF_FIELDS[ref_kind] if ref.get(f)), None)
    found = index.get(ref_kind, {}).get(token) if isinstance(token, str) else None
    if found is None:
        raise ConfigError(
            f"decK state file {show(e.file)}: {e.where} ({label(e.kind, e.body)}) refers to {ref_field} "
            f"{token!r}, which no file of the state defines",
            hint=f"add the {ref_field} to the state, or nest the {e.kind.rstrip('s')} under it")
    return found


def _identity_part(e: LocatedEntity, f: str, index: Mapping[str, Mapping[str, LocatedEntity]],
                   show: Callable[[Path], str]) -> Any:
    if f == "^":
        return None if e.parent is None else _canonical(e.parent)
    if f == "@scope":
        scope = []
        for ref_field, ref_kind in REFERENCES.items():
            owner = _owner(e, ref_kind)
            if owner is None and e.body.get(ref_field) is not None:
                owner = _resolve(e, ref_field, ref_kind, index, show)
            scope.append(None if owner is None else _canonical(owner))
        return tuple(scope)
    value = e.body.get(f)
    return value if isinstance(value, str | int) and value != "" else None


def _owner(e: LocatedEntity, kind: str) -> LocatedEntity | None:
    """The nearest enclosing entity of ``kind`` (a plugin nested under a route under a service belongs to
    the route; Kong scopes it to the route only)."""
    parent = e.parent
    if parent is not None and parent.kind == kind:
        return parent
    return None


def _canonical(e: LocatedEntity) -> str:
    """One token for an entity however it is referred to (its id, else its kind and natural name)."""
    for f in ("id", *NAME_FIELDS):
        value = e.body.get(f)
        if isinstance(value, str) and value:
            return f"{f}={value}"
    return f"{e.kind}@{e.where}"


def label(kind: str, body: Mapping[str, Any]) -> str:
    """How messages name an entity: ``services 'orders'``; a secret is shown as its fingerprint only."""
    if kind in ("keyauth_credentials", "jwt_secrets") and isinstance(body.get("key"), str):
        shown = f"key sha256:{fingerprint(body['key'])}" if _secret("key") else f"key {body['key']!r}"
        return f"{kind} {shown}"
    for f in NAME_FIELDS:
        value = body.get(f)
        if isinstance(value, str) and value and not _secret(f):
            text = f"{kind} {value!r}" if f in ("name", "username", "target") else f"{kind} {f} {value!r}"
            if kind == "plugins":
                scope = [f"{r} {_ref_text(body[r])!r}" for r in REFERENCES if body.get(r) is not None]
                text += f" on {', '.join(scope)}" if scope else ""
            return text
    if isinstance(body.get("id"), str):
        return f"{kind} id {body['id']!r}"
    return f"{kind} (unnamed)"


def _ref_text(ref: Any) -> str:
    if isinstance(ref, Mapping):
        return str(next((ref[f] for f in ("name", "username", "id") if ref.get(f)), "?"))
    return str(ref)


def _secret(name: str) -> bool:
    lower = name.lower()
    return lower in SECRET_KEYS or any(part in lower for part in SECRET_KEY_PARTS)


def walk_entities(config: Mapping[str, list[Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    def inner(kind: str, body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        yield kind, body
        for child, child_kind in CHILDREN.get(kind, {}).items():
            for item in body.get(child) or ():
                yield from inner(child_kind, item)

    for kind, items in config.items():
        for item in items:
            yield from inner(kind, item)

