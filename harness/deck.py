"""decK state files, one file or a folder of them, as the config source that seeds the X nodes.

``load_deck(path)`` reads a decK state file (YAML or JSON) or a folder of them and merges them as
``deck gateway sync a.yaml b.yaml`` (or ``deck sync -s a.yaml -s b.yaml``, or a folder) does;
``to_declarative(state)`` is the Kong declarative config (the DB-less ``POST /config`` format) for the X
version; ``entities(state)`` is its normal form (:class:`harness.config.NormalConfig`: kind -> natural
key -> fields), which :func:`harness.config.diff` compares with a live node's capture.

decK's rules, and where each comes from (Kong/go-database-reconciler is where decK's file code moved;
``GDR`` below is ``Kong/go-database-reconciler @ v1.40.3``, ``DECK`` is ``Kong/deck @ v1.65.1``):

- A folder is walked recursively; files ending ``.yaml``, ``.yml`` or ``.json`` (any case) are state files
  and every other file is ignored (GDR ``pkg/utils/utils.go`` ``ConfigFilesInDir``). A file named
  directly is read whatever its name. No state file at all is refused (GDR ``pkg/file/validate.go``
  ``validateEmptyContent``).
- A file may not begin with a space (GDR ``pkg/file/readfile.go`` ``readContent``). ``${{ env "DECK_X" }}``
  is decK's template (delimiters ``${{ }}``, variables must start ``DECK_``, an unset one is an error;
  ``readfile.go`` ``renderTemplate``); the harness's own ``${UPSTREAM_URL}`` is not decK syntax, so
  decK would leave it alone, and so does :func:`load_deck` unless given ``upstream_url``.
- Top-level keys outside decK's file schema are refused (GDR ``pkg/file/kong_json_schema.json``:
  ``additionalProperties: false``), as are ``_info`` keys outside it.
- Files are merged by concatenating every entity list (GDR ``readfile.go`` ``getContent``:
  ``mergo.Merge(..., WithAppendSlice)``; docs: Kong/docs.konghq.com ``app/_src/deck/guides/
  multi-file-state.md``, "concatenates the various arrays"). Scalars such as ``_format_version`` are kept
  from whichever file decK happens to read first (a Go map, so the order is not defined): the harness
  therefore requires every file that sets ``_format_version`` to set the same one. With none set,
  decK assumes ``"1.1"`` (DECK ``cmd/common.go``, ``utils.DefaultFormatVersion``).
- ``_info.select_tags`` lists are appended across files and de-duplicated, and the union is added to
  the ``tags`` of every entity, nested ones included (DECK ``cmd/common.go`` ``determineSelectorTag``;
  GDR ``pkg/file/builder.go``, ``utils.MustMergeTags`` on every entity kind). decK's docs call syncing
  files with different select_tags together an "undesired outcome" (``multi-file-state.md``: "applies
  both tags to both services"), so the harness refuses files whose select_tags differ; a file with none
  takes the others' (as decK's merge gives it).
- ``_info.defaults`` has four kinds: ``service``, ``route``, ``upstream``, ``target`` (GDR
  ``pkg/file/types.go`` ``KongDefaults``); plugin defaults are not supported (docs ``defaults.md``).
  A default fills a field the entity leaves out or sets to null, recursing into mappings; the entity's
  own value wins (GDR ``pkg/utils/defaulter.go``: ``mergo.Merge`` without override; docs ``defaults.md``
  "Value order of precedence"). ``id`` and ``name`` (target: ``id`` and ``target``) may not be
  defaulted (GDR ``pkg/utils/constants.go`` ``defaultsRestrictedFields``). A service's ``url`` sets its
  protocol, host, port and path before defaults apply (GDR ``types.go`` ``unwrapURL``), so those four
  are never defaulted on a service that has a ``url``. The same field defaulted to two values in two
  files is refused (decK's outcome would depend on its read order).
- ``_plugin_configs`` + a plugin's ``_config: NAME``: the named config fills the keys the plugin's own
  ``config`` leaves out, recursively; an unknown name is an error (GDR ``builder.go``
  ``fillPluginConfig``, ``mergePluginConfig``).
- ``_transform: false`` is refused (GDR ``pkg/file/reader.go`` ``ErrorTransformFalseNotSupported``).
- Identity: services, routes, keys and key sets need a name or an id; consumers a username or a
  custom_id; certificates an id, cert and key; and so on (:data:`REQUIRED`, from the file schema).
  Two entities with the same identity (:data:`IDENTITY`: id, name, username, custom_id, a plugin's name
  and scope, a credential's key, ...) are an error when decK builds its target state
  (GDR ``pkg/state/*.go`` ``Add``: "entity already exists"); the harness names both files.
- ``_workspace`` (Kong Enterprise) and ``_konnect`` (Konnect control planes) are refused: the harness
  seeds Kong OSS DB-less nodes, which have neither. Enterprise- or Konnect-only entity kinds are
  refused with what they are (:data:`UNSUPPORTED_KINDS`).

Nested entities (routes and plugins under services, plugins under routes and consumers, credentials
under consumers, targets under upstreams, snis under certificates) stay nested as decK writes them:
Kong's declarative format accepts that nesting (KONG-FACTS §5).

Errors are :class:`ConfigError` naming the file and the entity with a next step; they never quote a
line of a file, and a credential's key appears only as ``sha256:<8 hex>``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.compat import Version
from harness.config import SECRET_KEY_PARTS, SECRET_KEYS, NormalConfig, fingerprint, normalise, render_declarative
from harness.errors import ConfigError, HarnessError

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
_REF_FIELDS: Mapping[str, tuple[str, ...]] = {
    "services": ("id", "name"), "routes": ("id", "name"), "consumers": ("id", "username", "custom_id"),
}
#: the field that names an entity in messages, per kind (else its id, else its position)
_NAME_FIELDS: tuple[str, ...] = ("name", "username", "custom_id", "target", "prefix", "group", "subject_name")

_FormatName = Literal["yaml", "json"]


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
        return sum(1 for _ in _walk(self.config))

    def summary(self) -> str:
        names = ", ".join(p.name for p in self.files)
        tags = f", select_tags {list(self.select_tags)}" if self.select_tags else ""
        return (f"decK state {self.source} ({len(self.files)} file(s): {names}): {self.count()} entities, "
                f"_format_version {self.format_version}{tags}")


def load_deck(path: str | Path, *, upstream_url: str | None = None,
              env: Mapping[str, str] | None = None) -> DeckState:
    """Read one decK state file or a folder of them and merge them as ``deck gateway sync`` does.

    ``upstream_url`` fills the harness's ``${UPSTREAM_URL}`` placeholder (see
    :func:`harness.config.render_declarative`); without it the placeholder is kept as written. ``env``
    (default ``os.environ``) answers decK's ``${{ env "DECK_..." }}`` templates.
    """
    source = Path(path)
    files = state_files(source)
    reader = _Reader(source, os.environ if env is None else env, upstream_url)
    for file in files:
        reader.read(file)
    return reader.build()


def state_files(path: Path) -> list[Path]:
    """The files decK reads for ``path``: the file itself, or a folder's ``.yaml/.yml/.json`` files, walked
    recursively in lexical order (decK walks the same way; other files are ignored)."""
    if not path.exists():
        raise ConfigError(f"decK state {path} does not exist",
                          hint="point config.source at a decK state file or a folder of them")
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(folder) / n for n in sorted(names) if Path(n).suffix.lower() in STATE_FILE_SUFFIXES)
    if not found:
        raise ConfigError(
            f"decK state folder {path} holds no .yaml, .yml or .json file; decK refuses an empty state "
            "(it would delete everything)",
            hint="put the decK state files in the folder, or point config.source at a file",
        )
    return sorted(found, key=lambda p: p.relative_to(path).parts)


# ---------------------------------------------------------------------------------------------------
# Reading and merging


@dataclass(slots=True)
class _Entity:
    kind: str
    body: dict[str, Any]
    file: Path
    parent: _Entity | None
    where: str                     # position for messages, e.g. services[2].routes[0]


class _Reader:
    def __init__(self, source: Path, env: Mapping[str, str], upstream_url: str | None) -> None:
        self.source = source
        self.env = env
        self.upstream_url = upstream_url
        self.files: list[Path] = []
        self.formats: dict[str, Path] = {}                  # _format_version -> first file setting it
        self.tag_sets: dict[tuple[str, ...], Path] = {}     # sorted select_tags -> first file setting them
        self.defaults: dict[str, dict[str, Any]] = {}
        self.default_origin: dict[tuple[str, str], Path] = {}
        self.plugin_configs: dict[str, Any] = {}
        self.plugin_config_origin: dict[str, Path] = {}
        self.lists: dict[str, list[tuple[Path, int, Any]]] = {}   # kind -> (file, index, raw entity)

    def show(self, file: Path) -> str:
        """A file's name as messages show it: relative to the folder given, else as given."""
        if self.source.is_dir():
            try:
                return str(file.relative_to(self.source))
            except ValueError:
                pass
        return str(file)

    # ---- one file ---------------------------------------------------------------------------------
    def read(self, file: Path) -> None:
        data = self.parse(file)
        shown = self.show(file)
        self.files.append(file)
        unknown = sorted(k for k in data if k not in META_KEYS and k not in ENTITY_KINDS
                         and k not in UNSUPPORTED_KINDS)
        if unknown:
            raise ConfigError(
                f"decK state file {shown}: top-level key(s) {unknown} are not part of decK's file format "
                f"(expected {sorted(META_KEYS | set(ENTITY_KINDS))})",
                hint="a decK folder may hold only decK state files: move other .yaml/.json files out of it "
                     "(decK reads every .yaml, .yml and .json file in the folder)",
            )
        for kind, why in UNSUPPORTED_KINDS.items():
            if data.get(kind):
                raise ConfigError(f"decK state file {shown} has {kind}: not supported, {why}",
                                  hint=f"remove {kind} from the file; the harness seeds Kong OSS DB-less nodes")
        if data.get("_workspace") not in (None, ""):
            raise ConfigError(
                f"decK state file {shown} sets _workspace: not supported, workspaces are a Kong Enterprise "
                "feature and the harness seeds Kong OSS DB-less nodes, which have one implicit workspace",
                hint="remove _workspace from the file (use one folder per workspace outside the harness)",
            )
        if data.get("_konnect") not in (None, {}):
            raise ConfigError(
                f"decK state file {shown} sets _konnect: not supported, it targets a Konnect control plane",
                hint="remove _konnect from the file; the harness starts its own Kong nodes",
            )
        if data.get("_transform") is False:
            raise ConfigError(
                f"decK state file {shown} sets _transform: false, which decK does not support "
                "(Kong/go-database-reconciler pkg/file/reader.go)",
                hint="remove _transform from the file",
            )
        self.read_format(data, file)
        self.read_info(data.get("_info"), file)
        self.read_plugin_configs(data.get("_plugin_configs"), file)
        for kind in ENTITY_KINDS:
            items = data.get(kind)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ConfigError(f"decK state file {shown}: {kind} is {type(items).__name__}; expected a list",
                                  hint=f"write {kind} as a YAML list (`- name: ...`)")
            bucket = self.lists.setdefault(kind, [])
            bucket.extend((file, i, item) for i, item in enumerate(items))

    def parse(self, file: Path) -> dict[str, Any]:
        shown = self.show(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"decK state file {shown} cannot be read: {type(exc).__name__}",
                              hint="check the file's permissions and that it is UTF-8 text") from None
        if text.startswith(" "):
            # GDR pkg/file/readfile.go readContent: "file must not begin with a whitespace"
            raise ConfigError(f"decK state file {shown} begins with a space, which decK refuses",
                              hint="remove the leading spaces of the first line")
        if "${{" in text:
            text = _render_deck_template(text, self.env, shown)
        if self.upstream_url is not None:
            text = render_declarative(text, self.upstream_url)
        try:
            if file.suffix.lower() == ".json":
                data = json.loads(text) if text.strip() else None
            else:
                data = yaml.load(text, Loader=_Loader)  # a safe loader, without timestamps
        except json.JSONDecodeError as exc:
            raise ConfigError(f"decK state file {shown} is not valid JSON: {exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}", hint="fix the JSON syntax at that place") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"decK state file {shown} is not valid YAML: {_yaml_problem(exc)}",
                              hint="fix the YAML syntax at that place") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"decK state file {shown} holds a {type(data).__name__}; expected a mapping "
                              "with _format_version and entity lists",
                              hint="a decK folder may hold only decK state files")
        return data

    def read_format(self, data: Mapping[str, Any], file: Path) -> None:
        if "_format_version" not in data or data["_format_version"] in (None, ""):
            return
        value = data["_format_version"]
        text = str(value)
        if isinstance(value, bool) or text not in FORMAT_VERSIONS:
            raise ConfigError(
                f"decK state file {self.show(file)}: _format_version is {value!r}; expected one of "
                f"{sorted(FORMAT_VERSIONS)} as a quoted string",
                hint='write _format_version: "3.0" for Kong 3.x, "1.1" for Kong 2.x',
            )
        if isinstance(value, float):
            raise ConfigError(
                f"decK state file {self.show(file)}: _format_version is the number {value!r}; decK expects "
                "a string", hint=f'quote it: _format_version: "{text}"')
        self.formats.setdefault(text, file)

    def read_info(self, info: Any, file: Path) -> None:
        shown = self.show(file)
        if info is None:
            return
        if not isinstance(info, dict):
            raise ConfigError(f"decK state file {shown}: _info is {type(info).__name__}; expected a mapping",
                              hint="write _info with select_tags and defaults under it")
        unknown = sorted(k for k in info if k not in INFO_KEYS and k not in UNSUPPORTED_INFO)
        if unknown:
            raise ConfigError(f"decK state file {shown}: _info has unknown key(s) {unknown}; decK's schema "
                              f"allows {sorted(INFO_KEYS | set(UNSUPPORTED_INFO))}",
                              hint="remove them (decK would refuse the file too)")
        for key, why in UNSUPPORTED_INFO.items():
            if info.get(key):
                raise ConfigError(f"decK state file {shown}: _info.{key} is not supported: {why}",
                                  hint=f"remove _info.{key}")
        tags = info.get("select_tags")
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
                raise ConfigError(f"decK state file {shown}: _info.select_tags must be a list of strings",
                                  hint="write select_tags: [team-a]")
            if tags:
                # decK de-duplicates and sorts them before comparing (DECK cmd/common.go determineSelectorTag)
                self.tag_sets.setdefault(tuple(sorted(set(tags))), file)
        defaults = info.get("defaults")
        if defaults is None:
            return
        if not isinstance(defaults, dict):
            raise ConfigError(f"decK state file {shown}: _info.defaults is {type(defaults).__name__}; "
                              "expected a mapping by kind", hint="write defaults: {service: {retries: 5}}")
        for kind, values in defaults.items():
            if kind not in DEFAULT_KINDS:
                raise ConfigError(
                    f"decK state file {shown}: _info.defaults.{kind} is not supported; decK has defaults for "
                    f"{sorted(DEFAULT_KINDS)} only (plugin defaults are not supported by decK)",
                    hint="set those fields on each entity instead")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"decK state file {shown}: _info.defaults.{kind} must be a mapping of fields",
                                  hint=f"write defaults: {{{kind}: {{field: value}}}}")
            restricted = sorted(f for f in DEFAULT_RESTRICTED[kind] if values.get(f) is not None)
            if restricted:
                raise ConfigError(f"decK state file {shown}: _info.defaults.{kind} sets {restricted}, which "
                                  "decK does not allow as defaults", hint="set them on each entity instead")
            merged = self.defaults.setdefault(kind, {})
            for name, value in values.items():
                if value is None:
                    continue
                first = self.default_origin.get((kind, name))
                if first is not None and merged[name] != value:
                    raise ConfigError(
                        f"_info.defaults.{kind}.{name} differs between decK state files {self.show(first)} "
                        f"and {shown}; decK would keep whichever file it read first",
                        hint="set the default in one file only, or to the same value in both")
                merged[name] = value
                self.default_origin.setdefault((kind, name), file)

    def read_plugin_configs(self, configs: Any, file: Path) -> None:
        if configs is None:
            return
        if not isinstance(configs, dict) or not all(isinstance(v, dict) for v in configs.values()):
            raise ConfigError(f"decK state file {self.show(file)}: _plugin_configs must map names to plugin "
                              "configs", hint="write _plugin_configs: {name: {field: value}}")
        for name, conf in configs.items():
            first = self.plugin_config_origin.get(name)
            if first is not None and self.plugin_configs[name] != conf:
                raise ConfigError(
                    f"_plugin_configs {name!r} differs between decK state files {self.show(first)} and "
                    f"{self.show(file)}", hint="define each _plugin_configs entry in one file")
            self.plugin_configs[name] = conf
            self.plugin_config_origin.setdefault(name, file)

    # ---- the merged state -------------------------------------------------------------------------
    def build(self) -> DeckState:
        if len(self.formats) > 1:
            (a, fa), (b, fb) = sorted(self.formats.items(), key=lambda kv: self.files.index(kv[1]))[:2]
            raise ConfigError(
                f"_format_version differs between decK state files: {self.show(fa)} has {a!r}, "
                f"{self.show(fb)} has {b!r}; decK would keep whichever it read first",
                hint='give every file the same _format_version ("3.0" for Kong 3.x; convert older files '
                     "with `deck file convert --from kong-gateway-2.x --to kong-gateway-3.x`)")
        if len(self.tag_sets) > 1:
            (a_tags, fa), (b_tags, fb) = sorted(self.tag_sets.items(),
                                                key=lambda kv: self.files.index(kv[1]))[:2]
            raise ConfigError(
                f"_info.select_tags differ between decK state files: {self.show(fa)} has {list(a_tags)}, "
                f"{self.show(fb)} has {list(b_tags)}; decK would add all of them to every entity of both "
                "(Kong/deck docs, multi-file-state: an undesired outcome)",
                hint="give every file the same select_tags, or use one config.source per tag set")
        if not any(self.lists.values()):
            raise ConfigError(
                f"decK state {self.source} defines no entities: nothing to seed X with (and decK syncing it "
                "would delete every entity)", hint="check that config.source names the right file or folder")
        fmt = next(iter(self.formats), DEFAULT_FORMAT_VERSION)
        tags = next(iter(self.tag_sets), ())
        config: dict[str, list[Any]] = {}
        file_of: dict[str, list[int]] = {}
        flat: list[_Entity] = []
        for kind in ENTITY_KINDS:
            for file, i, raw in self.lists.get(kind, ()):
                body = self.entity(kind, raw, file, f"{kind}[{i}]", tags)
                config.setdefault(kind, []).append(body)
                file_of.setdefault(kind, []).append(self.files.index(file))
                self.collect(kind, body, file, None, f"{kind}[{i}]", flat)
        _check_identity(flat, self.show)
        return DeckState(self.source, tuple(self.files), fmt, tuple(tags),
                         {k: dict(v) for k, v in self.defaults.items()}, config,
                         {k: tuple(v) for k, v in file_of.items()})

    def entity(self, kind: str, raw: Any, file: Path, where: str, tags: tuple[str, ...]) -> dict[str, Any]:
        """A copy of one entity (children too) with _config, defaults and select_tags applied."""
        if not isinstance(raw, dict):
            raise ConfigError(f"decK state file {self.show(file)}: {where} is {type(raw).__name__}; expected "
                              "a mapping of fields", hint="check the indentation of the list")
        body = dict(raw)
        for alternatives in REQUIRED.get(kind, ()):
            if all(body.get(f) not in (None, "") for f in alternatives):
                break
        else:
            if kind in REQUIRED:
                wanted = " or ".join("+".join(a) for a in REQUIRED[kind])
                raise ConfigError(
                    f"decK state file {self.show(file)}: {where} ({_label(kind, body)}) has no {wanted}; decK's "
                    "file schema requires it", hint=f"give the entity a {wanted}")
        for child, why in ((c, w) for (k, c), w in UNSUPPORTED_CHILDREN.items() if k == kind):
            if body.get(child):
                raise ConfigError(f"decK state file {self.show(file)}: {where}.{child} is not supported: {why}",
                                  hint=f"remove {child} from the entity")
        if kind == "plugins" and "_config" in body:
            self.fill_plugin_config(body, file, where)
        default_kind = next((d for d, k in DEFAULT_KINDS.items() if k == kind), None)
        if default_kind is not None and default_kind in self.defaults:
            skip = URL_FIELDS if kind == "services" and body.get("url") else ()
            _fill(body, self.defaults[default_kind], skip)
        if tags:
            current = body.get("tags")
            if current is not None and not isinstance(current, list):
                raise ConfigError(f"decK state file {self.show(file)}: {where}.tags must be a list",
                                  hint="write tags: [a, b]")
            merged = list(current or [])
            merged.extend(t for t in tags if t not in merged)   # GDR pkg/utils/tags.go MergeTags: append missing
            body["tags"] = merged
        for child, child_kind in CHILDREN.get(kind, {}).items():
            items = body.get(child)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ConfigError(f"decK state file {self.show(file)}: {where}.{child} must be a list",
                                  hint=f"write {child} as a YAML list under the entity")
            body[child] = [self.entity(child_kind, item, file, f"{where}.{child}[{j}]", tags)
                           for j, item in enumerate(items)]
        return body

    def fill_plugin_config(self, body: dict[str, Any], file: Path, where: str) -> None:
        name = body.pop("_config")
        if name is None:
            return
        if name not in self.plugin_configs:
            raise ConfigError(
                f"decK state file {self.show(file)}: {where} ({_label('plugins', body)}) uses _config {name!r}, "
                "which no _plugin_configs entry defines", hint="add it under _plugin_configs, or fix the name")
        conf = body.get("config")
        if conf is None:
            conf = body["config"] = {}
        if not isinstance(conf, dict):
            raise ConfigError(f"decK state file {self.show(file)}: {where}.config must be a mapping",
                              hint="write config as a mapping of fields")
        body["config"] = _merged_config(conf, self.plugin_configs[name])

    def collect(self, kind: str, body: dict[str, Any], file: Path, parent: _Entity | None, where: str,
                out: list[_Entity]) -> None:
        entity = _Entity(kind, body, file, parent, where)
        out.append(entity)
        for child, child_kind in CHILDREN.get(kind, {}).items():
            for j, item in enumerate(body.get(child) or ()):
                self.collect(child_kind, item, file, entity, f"{where}.{child}[{j}]", out)


def _fill(body: dict[str, Any], defaults: Mapping[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Fill what ``body`` leaves out (or null) from ``defaults``, recursing into mappings (mergo.Merge)."""
    for name, value in defaults.items():
        if name in skip:
            continue
        current = body.get(name)
        if current is None:
            body[name] = copy.deepcopy(value)
        elif isinstance(current, dict) and isinstance(value, dict):
            inner = dict(current)
            _fill(inner, value)
            body[name] = inner


def _merged_config(own: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """A plugin's config with a _plugin_configs entry under it: the plugin's own keys win, at every level
    (GDR pkg/file/builder.go mergePluginConfig)."""
    out = dict(own)
    for key, value in source.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _merged_config(out[key], value)
    return out


# ---------------------------------------------------------------------------------------------------
# Identity: references resolve, no entity twice


def _check_identity(flat: list[_Entity], show: Callable[[Path], str]) -> None:
    """Check that references resolve and that no two entities share an identity."""
    index: dict[str, dict[str, _Entity]] = {}      # kind -> any reference token -> entity
    for e in flat:
        for f in _REF_FIELDS.get(e.kind, ()):
            token = e.body.get(f)
            if isinstance(token, str) and token:
                index.setdefault(e.kind, {}).setdefault(token, e)
    seen: dict[tuple[Any, ...], _Entity] = {}
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
                f"{_label(e.kind, e.body)} is defined {where}: two {e.kind} with the same "
                f"{'+'.join(f.lstrip('@^') or 'parent' for f in spec)}; decK stops with 'entity already exists'",
                hint="keep one definition (a folder's files are merged into one state)")


def _resolve(e: _Entity, ref_field: str, ref_kind: str, index: Mapping[str, Mapping[str, _Entity]],
             show: Callable[[Path], str]) -> _Entity:
    ref = e.body[ref_field]
    token = ref
    if isinstance(ref, Mapping):
        token = next((ref[f] for f in _REF_FIELDS[ref_kind] if ref.get(f)), None)
    found = index.get(ref_kind, {}).get(token) if isinstance(token, str) else None
    if found is None:
        raise ConfigError(
            f"decK state file {show(e.file)}: {e.where} ({_label(e.kind, e.body)}) refers to {ref_field} "
            f"{token!r}, which no file of the state defines",
            hint=f"add the {ref_field} to the state, or nest the {e.kind.rstrip('s')} under it")
    return found


def _identity_part(e: _Entity, f: str, index: Mapping[str, Mapping[str, _Entity]],
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


def _owner(e: _Entity, kind: str) -> _Entity | None:
    """The nearest enclosing entity of ``kind`` (a plugin nested under a route under a service belongs to
    the route; Kong scopes it to the route only)."""
    parent = e.parent
    if parent is not None and parent.kind == kind:
        return parent
    return None


def _canonical(e: _Entity) -> str:
    """One token for an entity however it is referred to (its id, else its kind and natural name)."""
    for f in ("id", *_NAME_FIELDS):
        value = e.body.get(f)
        if isinstance(value, str) and value:
            return f"{f}={value}"
    return f"{e.kind}@{e.where}"


def _label(kind: str, body: Mapping[str, Any]) -> str:
    """How messages name an entity: ``services 'orders'``; a secret is shown as its fingerprint only."""
    if kind in ("keyauth_credentials", "jwt_secrets") and isinstance(body.get("key"), str):
        shown = f"key sha256:{fingerprint(body['key'])}" if _secret("key") else f"key {body['key']!r}"
        return f"{kind} {shown}"
    for f in _NAME_FIELDS:
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


def _walk(config: Mapping[str, list[Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    def inner(kind: str, body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        yield kind, body
        for child, child_kind in CHILDREN.get(kind, {}).items():
            for item in body.get(child) or ():
                yield from inner(child_kind, item)

    for kind, items in config.items():
        for item in items:
            yield from inner(kind, item)


# ---------------------------------------------------------------------------------------------------
# Output: Kong's declarative config, and its normal form


def format_version_for(state: DeckState, kong_version: str | Version | None) -> str:
    """The ``_format_version`` to send to Kong ``kong_version``: "3.0" for 3.x, "1.1" for 2.x.

    A file written for the other major is refused: decK refuses a non-"3.0" file for Kong 3.0 or above
    (DECK cmd/common.go, "cannot apply ... config format version"), and Kong 2.8 refuses "3.0"
    (KONG-FACTS §5: "expected one of: 1.1, 2.1").
    """
    if kong_version is None:
        return state.format_version
    try:
        version = Version.parse(kong_version)
    except HarnessError as exc:
        raise ConfigError(str(exc.message), hint=exc.hint) from None
    if version.major >= 3:
        if state.format_version != "3.0":
            raise ConfigError(
                f"{state.source} has _format_version {state.format_version!r}, but X runs Kong {version}; "
                "decK refuses to apply a format other than 3.0 to Kong 3.0 or above (Kong/deck cmd/common.go)",
                hint="convert the files with `deck file convert --from kong-gateway-2.x --to kong-gateway-3.x` "
                     'and set _format_version: "3.0"')
        return "3.0"
    if state.format_version == "3.0":
        raise ConfigError(
            f"{state.source} has _format_version '3.0', but X runs Kong {version}, which accepts only "
            "1.1 or 2.1 (KONG-FACTS §5)",
            hint='use the decK files written for Kong 2.x (_format_version: "1.1"), or set x.version to 3.x')
    return "1.1"


def to_declarative(state: DeckState, kong_version: str | Version | None = None) -> dict[str, Any]:
    """Kong's declarative config (DB-less ``POST /config``) for the state: decK-only keys removed,
    defaults and select_tags applied, ``_format_version`` for ``kong_version`` (default: the files')."""
    out: dict[str, Any] = {"_format_version": format_version_for(state, kong_version)}
    # a JSON round trip copies plain data several times faster than deepcopy (the loader keeps it plain)
    out.update(json.loads(json.dumps({k: v for k, v in state.config.items() if v})))
    return out


def to_declarative_text(state: DeckState, kong_version: str | Version | None = None, *,
                        fmt: _FormatName = "yaml") -> str:
    """:func:`to_declarative` as YAML (default) or JSON text: what ``KONG_DECLARATIVE_CONFIG`` or
    ``POST /config`` takes. ``${UPSTREAM_URL}`` stays as written unless the state was loaded with it."""
    data = to_declarative(state, kong_version)
    if fmt == "json":
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    header = f"# generated by harness.deck from {', '.join(p.name for p in state.files)}\n"
    return header + yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=4096)


def entities(state: DeckState, kong_version: str | Version | None = None, *,
             upstream_url: str | None = None) -> NormalConfig:
    """The state in normal form (kind -> natural key -> fields), to compare with a live node through
    :func:`harness.config.diff`, e.g. ``diff(entities(state), capture(y_admin))``.

    ``upstream_url`` fills ``${UPSTREAM_URL}`` when the state was loaded without it.
    """
    data = to_declarative(state, kong_version)
    if upstream_url is not None:
        data = _render_strings(data, upstream_url)
    names = ", ".join(p.name for p in state.files)
    return normalise(data, source=f"decK files {names}")


#: the field :func:`origins` marks entities with while normalising (normalise keeps unknown fields)
_ORIGIN_FIELD = "__harness_deck_file"


def origins(state: DeckState, *, upstream_url: str | None = None) -> dict[str, dict[str, Path]]:
    """The file each entity of :func:`entities` comes from, by the same kind and natural key, so that a
    parity finding such as ``routes['orders-list']`` can name the file to fix."""
    data = to_declarative(state)
    for kind, indexes in state.file_of.items():
        for body, index in zip(data.get(kind, ()), indexes, strict=True):
            _mark(kind, body, index)
    # the natural keys do not depend on the upstream's URL, but normalising needs a URL to parse
    data = _render_strings(data, upstream_url or "http://upstream.invalid")
    out: dict[str, dict[str, Path]] = {}
    for kind, bodies in normalise(data).entities.items():
        for key, body in bodies.items():
            out.setdefault(kind, {})[key] = state.files[body[_ORIGIN_FIELD]]
    return out


def _mark(kind: str, body: dict[str, Any], index: int) -> None:
    body[_ORIGIN_FIELD] = index
    for child, child_kind in CHILDREN.get(kind, {}).items():
        for item in body.get(child) or ():
            _mark(child_kind, item, index)


def _render_strings(obj: Any, upstream_url: str) -> Any:
    if isinstance(obj, str):
        return render_declarative(obj, upstream_url) if "${" in obj else obj
    if isinstance(obj, list):
        return [_render_strings(i, upstream_url) for i in obj]
    if isinstance(obj, dict):
        return {k: _render_strings(v, upstream_url) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------------------------------
# Parsing helpers


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader without the timestamp type: decK reads a file as JSON data (sigs.k8s.io/yaml),
    where ``2024-01-01`` stays a string, and the state must stay plain JSON data."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error's problem and position, without the snippet of the line PyYAML would quote."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        return f"{problem}{where}"
    return type(exc).__name__


#: decK's template actions: ``${{ env "DECK_NAME" }}``, optionally piped to toBool / toInt / toFloat
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_ENV_ACTION = re.compile(r'^\s*env\s+"([^"]*)"\s*(?:\|\s*(toBool|toInt|toFloat)\s*)?$')
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _render_deck_template(text: str, env: Mapping[str, str], shown: str) -> str:
    """decK's ``${{ env "DECK_..." }}`` substitution (GDR pkg/file/readfile.go renderTemplate): the variable
    must start with ``DECK_`` and be set; toBool / toInt / toFloat check the value's form."""

    def one(match: re.Match[str]) -> str:
        action = _ENV_ACTION.match(match.group(1))
        if action is None:
            raise ConfigError(
                f"decK state file {shown} uses a template action the harness does not support "
                '(only ${{ env "DECK_NAME" }}, optionally | toBool, | toInt or | toFloat)',
                hint="render the file first with `deck file render`, and point config.source at the result")
        name, convert = action.group(1), action.group(2)
        if not name.startswith("DECK_"):
            raise ConfigError(f"decK state file {shown}: environment variable {name!r} in a template must "
                              "start with DECK_ (decK's rule)", hint=f"rename it DECK_{name}")
        if name not in env:
            raise ConfigError(f"decK state file {shown}: environment variable {name!r} is used but not set",
                              hint=f"export {name} before the run")
        value = env[name]
        try:
            if convert == "toBool":
                return "true" if _GO_BOOLS[value] else "false"
            if convert == "toInt":
                return str(int(value, 10))
            if convert == "toFloat":
                text = repr(float(value))
                return text[:-2] if text.endswith(".0") else text
        except (KeyError, ValueError):
            raise ConfigError(f"decK state file {shown}: environment variable {name!r} is not a valid "
                              f"{convert[2:].lower() if convert else 'value'}",
                              hint=f"set {name} to a value {convert} accepts") from None
        return value

    return _TEMPLATE.sub(one, text)
