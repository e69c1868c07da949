"""decK state files, one file or a folder of them, as the config source that seeds the X nodes.

``load_deck(path)`` reads a decK state file (YAML or JSON) or a folder of them and merges them as
``deck gateway sync a.yaml b.yaml`` (or ``deck sync -s a.yaml -s b.yaml``, or a folder) does;
``to_declarative(state)`` is the Kong declarative config (the DB-less ``POST /config`` format) for the X
version; ``entities(state)`` is its normal form (:class:`harness.config.NormalConfig`: kind -> natural
key -> fields), which :func:`harness.config_diff.diff` compares with a live node's capture.

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

The rules' data, :class:`DeckState` and the identity check live in :mod:`harness.deck_rules`; reading
and merging files in :mod:`harness.deck_merge`; this module is the surface the rest of the harness uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml

from harness.compat import Version
from harness.config import NormalConfig, normalise
from harness.config_capture import render_declarative
from harness.deck_merge import read_state
from harness.deck_rules import CHILDREN, STATE_FILE_SUFFIXES, DeckState
from harness.errors import ConfigError, HarnessError

__all__ = [
    "DeckState",
    "entities",
    "format_version_for",
    "load_deck",
    "origins",
    "state_files",
    "to_declarative",
    "to_declarative_text",
]

_FormatName = Literal["yaml", "json"]


def load_deck(path: str | Path, *, upstream_url: str | None = None,
              env: Mapping[str, str] | None = None) -> DeckState:
    """Read one decK state file or a folder of them and merge them as ``deck gateway sync`` does.

    ``upstream_url`` fills the harness's ``${UPSTREAM_URL}`` placeholder (see
    :func:`harness.config_capture.render_declarative`); without it the placeholder is kept as written. ``env``
    (default ``os.environ``) answers decK's ``${{ env "DECK_..." }}`` templates.
    """
    source = Path(path)
    files = state_files(source)
    return read_state(source, files, env=os.environ if env is None else env, upstream_url=upstream_url)


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


def to_declarative(state: DeckState, kong_version: str | Version | None = None) -> dict[str, object]:
    """Kong's declarative config (DB-less ``POST /config``) for the state: decK-only keys removed,
    defaults and select_tags applied, ``_format_version`` for ``kong_version`` (default: the files')."""
    out: dict[str, object] = {"_format_version": format_version_for(state, kong_version)}
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
    :func:`harness.config_diff.diff`, e.g. ``diff(entities(state), capture(y_admin))``.

    ``upstream_url`` fills ``${UPSTREAM_URL}`` when the state was loaded without it.
    """
    data = to_declarative(state, kong_version)
    if upstream_url is not None:
        data = _render_config(data, upstream_url)
    names = ", ".join(p.name for p in state.files)
    return normalise(data, source=f"decK files {names}")


#: the field :func:`origins` marks entities with while normalising (normalise keeps unknown fields)
_ORIGIN_FIELD = "__harness_deck_file"


def origins(state: DeckState, *, upstream_url: str | None = None) -> dict[str, dict[str, Path]]:
    """The file each entity of :func:`entities` comes from, by the same kind and natural key, so that a
    parity finding such as ``routes['orders-list']`` can name the file to fix."""
    data = to_declarative(state)
    for kind, indexes in state.file_of.items():
        bodies = data.get(kind, ())
        for body, index in zip(bodies if isinstance(bodies, list) else (), indexes, strict=True):
            _mark(kind, body, index)
    # the natural keys do not depend on the upstream's URL, but normalising needs a URL to parse
    data = _render_config(data, upstream_url or "http://upstream.invalid")
    out: dict[str, dict[str, Path]] = {}
    for kind, bodies in normalise(data).entities.items():
        for key, body in bodies.items():
            out.setdefault(kind, {})[key] = state.files[body[_ORIGIN_FIELD]]
    return out


def _mark(kind: str, body: dict[str, object], index: int) -> None:
    body[_ORIGIN_FIELD] = index
    for child, child_kind in CHILDREN.get(kind, {}).items():
        items = body.get(child)
        for item in items if isinstance(items, list) else ():
            _mark(child_kind, item, index)


def _render_config(data: dict[str, object], upstream_url: str) -> dict[str, object]:
    return {k: _render_strings(v, upstream_url) for k, v in data.items()}


def _render_strings(obj: object, upstream_url: str) -> object:
    if isinstance(obj, str):
        return render_declarative(obj, upstream_url) if "${" in obj else obj
    if isinstance(obj, list):
        return [_render_strings(i, upstream_url) for i in obj]
    if isinstance(obj, dict):
        return {k: _render_strings(v, upstream_url) for k, v in obj.items()}
    return obj
