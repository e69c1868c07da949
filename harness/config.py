"""The normal form of a Kong configuration: :func:`normalise` and :class:`NormalConfig`.

One normalised form for every source: a nested declarative file (``services[].routes`` ...), the flat
``GET /config`` export of a DB-less node, and the entity listing of a CP or database-mode node. In it:

- entities are keyed by natural keys (service name; route name or a fingerprint of what it matches;
  consumer username or custom_id; plugin ``name@scope``; credential ``sha256:<prefix of the key's
  hash>``), never by id;
- ids, timestamps and workspace ids are dropped, foreign keys become natural keys;
- set-like lists are sorted, nulls and declared defaults (including fields later Kong versions added,
  such as key-auth ``realm``) are dropped, so a minimal file and a full export compare equal;
- secrets are redacted (``<redacted:sha256-8>``): a normalised config can be rendered or written.

This module owns the whole-config work (collecting the entries, resolving references, natural keys,
placing each entity under its key) and :func:`parse_declarative`. Its neighbours: the declared data
(:mod:`harness.config_rules`: normalisation is data, not branches), one entry's fields and key
(:mod:`harness.config_entry`), redaction (:mod:`harness.config_redact`), capturing a node's config and
rendering templates (:mod:`harness.config_capture`), and the parity diff (:mod:`harness.config_diff`).
"""

from __future__ import annotations

import copy
import gc
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from harness.config_entry import (
    DROPPED,
    NO_REF_KEYS,
    NO_REFS,
    REWRITTEN,
    Entry,
    KindPlan,
    canonical,
    describe,
    dropped,
    fill_default,
    fingerprint_of,
    finish_field,
    kind_plan,
    normal_fields,
    other_key,
    own_fields,
    own_key,
    sort_key,
    sort_set,
    taken_as,
    written_body,
)
from harness.config_redact import EXACT_LEAVES, PLAIN_KEYS, is_secret_key, redact_secret
from harness.config_rules import (
    COLLECTED,
    FOREIGN_KEYS,
    KEYED_OTHERWISE,
    KINDS,
    OLD_FORMATS,
    PARENT_FIELD,
    REFERRED,
    ROUTE_MATCH_FIELDS,
    VOLATILE_FIELDS,
)
from harness.errors import ConfigError


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


class _Normaliser:
    """One declarative config on its way to the normal form: its entries collected by kind (nested ones
    after their parent), then each reference resolved, each natural key worked out and each entity built."""

    def __init__(self, declarative: Mapping[str, Any]) -> None:
        self.old_format = str(declarative.get("_format_version")) in OLD_FORMATS
        self.rewritten = REWRITTEN | {"routes"} if self.old_format else REWRITTEN
        self.raws: dict[str, list[Entry]] = {}
        self.by_ref: dict[str, dict[str, Entry]] = {}       # built for a kind when something refers to it
        for kind, items in declarative.items():
            if str(kind).startswith("_") or not isinstance(items, list) or not items:
                continue
            kind = str(kind)
            raws, plan = self.raws.setdefault(kind, []), kind_plan(kind)
            for item in items:
                self._collect(kind, item, None, raws, plan)

    def _collect(self, kind: str, item: object, parent: Entry | None, raws: list[Entry], plan: KindPlan) -> None:
        if type(item) is not dict and not isinstance(item, Mapping):     # (the ABC test is slow)
            raise ConfigError(
                f"{kind} entry is {type(item).__name__} {item!r:.80}; expected a mapping of fields",
                hint="check the indentation of the declarative file",
            )
        # (containers made only when needed: most entities have no children, many no references)
        children: list[tuple[str, list[Any]]] | None = None
        refs: dict[str, Any] | None = None
        taken: tuple[str, ...] = ()
        # child lists and foreign keys are taken out: only COLLECTED keys can be those, except under a
        # consumer (any list of mappings, under any name)
        if kind == "consumers":
            for k, v in item.items():
                if k in FOREIGN_KEYS or isinstance(v, list):
                    what = taken_as(kind, k, v)
                    if what is not None:
                        taken += (k,)
                        if what == "child":
                            children = [(k, v)] if children is None else [*children, (k, v)]
                        elif v is not None:
                            refs = {k: v} if refs is None else {**refs, k: v}
        else:
            for k in COLLECTED.intersection(item):
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
        drop = VOLATILE_FIELDS if not taken else DROPPED.get(taken) or dropped(taken)
        try:
            if kind in self.rewritten:
                body, empty, fp = own_fields(kind, item, drop, plan, self.old_format)
            else:
                body, fp = {}, None
                empty = normal_fields(item, drop, plan, body)
            failed = None
        except Exception as exc:     # raised where building the entity would raise it
            body, empty, fp, failed = {}, (), None, exc
        if parent is not None:
            refs = {} if refs is None else refs
            refs[PARENT_FIELD.get(parent.kind, parent.kind.rstrip("s"))] = parent
        raw = Entry(kind, item, drop, NO_REFS if refs is None else refs,
                   item.get("id") if kind in REFERRED else None, body, empty, fp, failed,
                   plan, own_key(kind, body) if refs is None and failed is None else None)
        raws.append(raw)
        for child_kind, items in children or ():
            if not items:
                continue
            child_raws, child_plan = self.raws.setdefault(child_kind, []), kind_plan(child_kind)
            for child in items:
                self._collect(child_kind, child, raw, child_raws, child_plan)

    def _index(self, kind: str) -> dict[str, Entry]:
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
            body = raw.body if raw.failed is None else written_body(raw)
            for value in (raw.ident, body.get("name"), body.get("username"), body.get("custom_id")):
                if value and isinstance(value, str):
                    index.setdefault(value, raw)
        return index

    def resolve(self, owner: Entry, field_name: str, ref: Any) -> Entry:
        if isinstance(ref, Entry):
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
                f"{owner.kind} entity {describe(owner)} refers to {field_name} {token!r}, "
                f"which is not among the config's {kind}",
                hint="the config is incomplete or its foreign keys are broken; re-export it from the node",
            )
        return found

    def natural_key(self, raw: Entry, seen: frozenset[int] = frozenset()) -> str:
        if raw.key is not None:
            return raw.key
        if seen and id(raw) in seen:
            raise ConfigError(f"circular reference at {raw.kind} {describe(raw)}")
        refs = raw.ref_keys
        if refs is None:
            refs = self._ref_keys(raw, seen) if raw.refs else NO_REF_KEYS
            raw.ref_keys = refs
        if raw.fp is not None:       # a key-auth credential's key, fingerprinted while collecting
            raw.key = f"sha256:{raw.fp}"
            return raw.key
        # the fields a key is made of, as written: the body holds the same leaves (bar secrets); a
        # container there is a copy (without nulls), so then the entry's fields are read
        key: str
        if raw.kind in KEYED_OTHERWISE:
            key = other_key(raw, refs)
        else:                        # by name (unnamed routes: by what they match)
            name = raw.body.get("name")
            if raw.failed is not None or type(name) not in EXACT_LEAVES:
                name = written_body(raw).get("name")
            if name:
                key = str(name)
            elif raw.kind == "routes":
                normal = self.entity(raw)          # defaults filled, sets sorted, refs as natural keys
                match = {f: normal[f] for f in ROUTE_MATCH_FIELDS if f in normal}
                key = "~" + hashlib.sha256(canonical(match).encode()).hexdigest()[:12]
            else:
                key = fingerprint_of(self.entity(raw), {})
        raw.key = key
        return key

    def _ref_keys(self, raw: Entry, seen: frozenset[int]) -> dict[str, str]:
        """The natural keys of the entities ``raw`` refers to, by foreign field (kept on ``raw``)."""
        if raw.ref_keys is None:
            if not raw.refs:
                raw.ref_keys = NO_REF_KEYS
                return NO_REF_KEYS
            keys: dict[str, str] = {}
            inner: frozenset[int] | None = None
            for f, r in raw.refs.items():
                # the usual case inline: an id string (or the nested parent) of an entity already keyed
                if type(r) is str:
                    kind = FOREIGN_KEYS.get(f) or f + "s"
                    target = (self.by_ref.get(kind) or self._index(kind)).get(r)
                else:
                    target = r if type(r) is Entry else None
                if target is not None and target.key is not None:
                    keys[f] = target.key
                else:
                    inner = seen | {id(raw)} if inner is None else inner
                    keys[f] = self.natural_key(self.resolve(raw, f, r), inner)
            raw.ref_keys = keys
        return raw.ref_keys

    def entity(self, raw: Entry) -> dict[str, Any]:
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
                if f not in PLAIN_KEYS and is_secret_key(f):
                    body[f] = redact_secret(body[f])
        filled: list[str] | None = None
        if plan.fills:
            name = body.get("name") if plan.per_plugin else None
            # an export carries every top-level defaulted field: then only the other rules can fill one
            for plugin, path, default in plan.other if plan.top_keys <= body.keys() else plan.fills:
                if plugin is None or plugin == (name if plan.name_kept else body.get("name")):
                    if len(path) > 1:
                        fill_default(body, path, default)
                    elif path[0] not in body:
                        body[path[0]] = default if type(default) in EXACT_LEAVES else copy.deepcopy(default)
                        filled = [path[0]] if filled is None else [*filled, path[0]]
        # what the pass above left for now (each field on its own: in any order): the fields defaults
        # filled, and plan.late (copied only)
        late: Iterable[str] = plan.late.intersection(body) if plan.late else filled or ()
        if filled and plan.late:
            late = [*filled, *late]
        if late:                     # (routes' headers are in plan.late)
            for k in late:
                sort_set(body, k, plan.sets)
            headers = body.get("headers") if kind == "routes" else None
            if headers is not None and isinstance(headers, Mapping):
                body["headers"] = {k: sorted(v, key=sort_key) if isinstance(v, list) else v
                                   for k, v in sorted(headers.items())}
            for k in late:
                if k in body:
                    finish_field(body, k)
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
