"""The parity diff of two normal forms: :func:`diff`, :class:`ConfigDiff`, :class:`Change`, :class:`AllowRule`.

:func:`diff` compares X with Y entity by entity under their natural keys (:class:`harness.config.NormalConfig`):
``==`` first, and deepdiff only on the few entities that differ (TOOLING.md). Differences an allow-list
rule explains are kept apart, with the rule's reason. The result renders as text and HTML and as a
dict, each redacted (:func:`harness.config_redact.redact`); :data:`ABSENT` stands for a side without
a value.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deepdiff import DeepDiff

from harness.config import NormalConfig
from harness.config_redact import redact
from harness.errors import ConfigError


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
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


#: a side that has no value at the path (an added or removed field or entity): ``None`` is a value
ABSENT: Any = _Absent()


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
    return None if value is ABSENT else str(value)


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
    changes = [Change("changed", _readable(base, (k,)), ABSENT, v) for k, v in after.items() if k not in before]
    changes += [Change("changed", _readable(base, (k,)), v, ABSENT) for k, v in before.items() if k not in after]
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
                changes.append(Change("changed", path, ABSENT, level.t2))
            elif report in ("dictionary_item_removed", "iterable_item_removed", "attribute_removed"):
                changes.append(Change("changed", path, level.t1, ABSENT))
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
            other = ys.get(key, ABSENT)
            if other is ABSENT:
                gone.append(key)
            elif entity != other:
                differ.append(key)
        new = ys.keys() - xs.keys()
        compared += len(xs) + len(new)
        removed += [Change("removed", _entity_path(kind, key), xs[key], ABSENT) for key in sorted(gone)]
        added += [Change("added", _entity_path(kind, key), ABSENT, ys[key]) for key in sorted(new)]
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
