"""Reading decK state files and merging them into one :class:`~harness.deck_rules.DeckState` (see
:mod:`harness.deck` for the rules and where each comes from; ``GDR`` is
``Kong/go-database-reconciler @ v1.40.3``, ``DECK`` is ``Kong/deck @ v1.65.1``)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.config_capture import render_declarative
from harness.deck_rules import (
    CHILDREN,
    DEFAULT_FORMAT_VERSION,
    DEFAULT_KINDS,
    DEFAULT_RESTRICTED,
    ENTITY_KINDS,
    FORMAT_VERSIONS,
    INFO_KEYS,
    META_KEYS,
    REQUIRED,
    UNSUPPORTED_CHILDREN,
    UNSUPPORTED_INFO,
    UNSUPPORTED_KINDS,
    URL_FIELDS,
    DeckState,
    LocatedEntity,
    check_identity,
    label,
)
from harness.errors import ConfigError


def read_state(source: Path, files: list[Path], *, env: Mapping[str, str], upstream_url: str | None) -> DeckState:
    """Read ``files`` (the state files of ``source``, in merge order) and merge them into one state."""
    reader = _Reader(source, env, upstream_url)
    for file in files:
        reader.read(file)
    return reader.build()


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
        flat: list[LocatedEntity] = []
        for kind in ENTITY_KINDS:
            for file, i, raw in self.lists.get(kind, ()):
                body = self.entity(kind, raw, file, f"{kind}[{i}]", tags)
                config.setdefault(kind, []).append(body)
                file_of.setdefault(kind, []).append(self.files.index(file))
                self.collect(kind, body, file, None, f"{kind}[{i}]", flat)
        check_identity(flat, self.show)
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
                    f"decK state file {self.show(file)}: {where} ({label(kind, body)}) has no {wanted}; decK's "
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
                f"decK state file {self.show(file)}: {where} ({label('plugins', body)}) uses _config {name!r}, "
                "which no _plugin_configs entry defines", hint="add it under _plugin_configs, or fix the name")
        conf = body.get("config")
        if conf is None:
            conf = body["config"] = {}
        if not isinstance(conf, dict):
            raise ConfigError(f"decK state file {self.show(file)}: {where}.config must be a mapping",
                              hint="write config as a mapping of fields")
        body["config"] = _merged_config(conf, self.plugin_configs[name])

    def collect(self, kind: str, body: dict[str, Any], file: Path, parent: LocatedEntity | None, where: str,
                out: list[LocatedEntity]) -> None:
        entity = LocatedEntity(kind, body, file, parent, where)
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
